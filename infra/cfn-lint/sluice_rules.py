"""The project's own rules for infra/cloudformation, run by cfn-lint (`--append-rules
infra/cfn-lint`, the `lint-cloudformation` step of `cargo xtask ci`).

E9101: a component's role (an IAM role with Metadata `sluice: {component: ...}`) names no `*`
       resource and no `*` action: least privilege, checked.
E9102: every resource LocalStack's community edition cannot run (anything but S3, SQS, SNS and
       CloudWatch alarms) sits behind a Condition that implies `IsAws`, so the `local` target
       never "deploys" it as a silent no-op.
E9103: every Output `up` and the components read (the template's Metadata
       `sluice: {outputs-read-by-up: [...]}`) exists unconditionally, in both targets.
E9104: the ingest queue's visibility timeout (default) is at least six times the batcher
       function's timeout (default): AWS refuses the event-source mapping otherwise.
"""

from cfnlint.rules import CloudFormationLintRule, RuleMatch

LOCAL_TYPES = {
    "AWS::S3::Bucket",
    "AWS::S3::BucketPolicy",
    "AWS::SQS::Queue",
    "AWS::SQS::QueuePolicy",
    "AWS::SNS::Topic",
    "AWS::SNS::Subscription",
    "AWS::CloudWatch::Alarm",
}


def _listify(value):
    return value if isinstance(value, list) else [value]


def _implies_aws(conditions, name, seen=()):
    """Whether condition `name` holds only when IsAws does."""
    if name == "IsAws":
        return True
    if name in seen or name not in conditions:
        return False
    definition = conditions[name]
    if isinstance(definition, dict) and "Fn::And" in definition:
        for term in definition["Fn::And"]:
            if isinstance(term, dict) and "Condition" in term:
                if _implies_aws(conditions, term["Condition"], seen + (name,)):
                    return True
    return False


class ComponentRoleLeastPrivilege(CloudFormationLintRule):
    id = "E9101"
    shortdesc = "No wildcard in a component's role"
    description = "A component's role names its resources and actions; no `*`."
    tags = ["sluice", "iam"]

    def match(self, cfn):
        matches = []
        for name, resource in cfn.get_resources(["AWS::IAM::Role"]).items():
            component = (resource.get("Metadata") or {}).get("sluice", {}).get("component")
            if not component:
                continue
            policies = (resource.get("Properties") or {}).get("Policies") or []
            for p, policy in enumerate(policies):
                statements = _listify(policy.get("PolicyDocument", {}).get("Statement", []))
                for s, statement in enumerate(statements):
                    path = ["Resources", name, "Properties", "Policies", p,
                            "PolicyDocument", "Statement", s]
                    for r in _listify(statement.get("Resource", [])):
                        if r == "*":
                            matches.append(RuleMatch(
                                path + ["Resource"],
                                f"the {component}'s role {name} grants on Resource `*`; "
                                "name the resources it needs"))
                    for a in _listify(statement.get("Action", [])):
                        if isinstance(a, str) and (a == "*" or a.endswith(":*")):
                            matches.append(RuleMatch(
                                path + ["Action"],
                                f"the {component}'s role {name} grants action `{a}`; "
                                "name the actions it needs"))
        return matches


class AwsOnlyBehindCondition(CloudFormationLintRule):
    id = "E9102"
    shortdesc = "AWS-only resources behind IsAws"
    description = ("Resources community LocalStack cannot run carry a Condition implying IsAws.")
    tags = ["sluice", "conditions"]

    def match(self, cfn):
        matches = []
        conditions = cfn.template.get("Conditions", {}) or {}
        if "IsAws" not in conditions:
            # A template with one target (publisher.yaml, AWS only) has nothing to keep apart.
            return matches
        for name, resource in (cfn.template.get("Resources") or {}).items():
            kind = resource.get("Type", "")
            if kind in LOCAL_TYPES:
                continue
            condition = resource.get("Condition")
            if not condition or not _implies_aws(conditions, condition):
                matches.append(RuleMatch(
                    ["Resources", name],
                    f"{name} ({kind}) would deploy on the local target, where LocalStack "
                    "ignores it; put it behind IsAws (or a Condition that implies it)"))
        return matches


class OutputsReadByUp(CloudFormationLintRule):
    id = "E9103"
    shortdesc = "Outputs read by up exist in both targets"
    description = "The outputs `up` and the components read are unconditional."
    tags = ["sluice", "outputs"]

    def match(self, cfn):
        matches = []
        metadata = (cfn.template.get("Metadata") or {}).get("sluice") or {}
        if "outputs-read-by-up" not in metadata:
            return matches
        outputs = cfn.template.get("Outputs") or {}
        resources = cfn.template.get("Resources") or {}
        for name in metadata["outputs-read-by-up"]:
            if name not in outputs:
                matches.append(RuleMatch(["Outputs"], f"`up` reads the output {name}, "
                                                      "which the template does not have"))
                continue
            output = outputs[name]
            if output.get("Condition"):
                matches.append(RuleMatch(["Outputs", name, "Condition"],
                                         f"`up` reads {name} in both targets: no Condition"))
            value = output.get("Value")
            refs = []
            if isinstance(value, dict):
                if "Ref" in value:
                    refs.append(value["Ref"])
                if "Fn::GetAtt" in value:
                    target = value["Fn::GetAtt"]
                    refs.append(target[0] if isinstance(target, list) else
                                str(target).split(".")[0])
            for ref in refs:
                if ref in resources and resources[ref].get("Condition"):
                    matches.append(RuleMatch(
                        ["Outputs", name, "Value"],
                        f"`up` reads {name}, whose resource {ref} is conditional"))
        return matches


class VisibilityCoversFunctionTimeout(CloudFormationLintRule):
    id = "E9104"
    shortdesc = "Ingest visibility timeout >= 6 x the batcher's timeout"
    description = "AWS refuses an SQS event-source mapping otherwise."
    tags = ["sluice", "lambda"]

    def match(self, cfn):
        parameters = cfn.template.get("Parameters") or {}
        visibility = parameters.get("IngestVisibilityTimeout", {}).get("Default")
        timeout = parameters.get("BatcherTimeout", {}).get("Default")
        if visibility is None or timeout is None:
            return []
        if int(visibility) < 6 * int(timeout):
            return [RuleMatch(
                ["Parameters", "IngestVisibilityTimeout", "Default"],
                f"IngestVisibilityTimeout {visibility} s is under six times BatcherTimeout "
                f"{timeout} s: AWS refuses the event-source mapping")]
        return []
