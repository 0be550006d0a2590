"""What a deployment of a template would create: `plan.py TEMPLATE PARAMETERS.json` prints JSON
with the parameters resolved (given, else the template's defaults), the problems (an unknown
parameter, a value outside its AllowedValues or bounds, a parameter target `aws` needs left
empty, the ingest visibility timeout under six times the batcher's), and the resources and
outputs whose Conditions hold. Run by `cargo xtask deploy --dry-run` with cfn-lint's template
decoder (it reads the short-form intrinsics: !Ref, !If, !Condition, ...).
"""

import json
import sys

from cfnlint.decode import decode

# What target `aws` cannot deploy without.
AWS_REQUIRED = ["VpcId", "SubnetIds", "RelayImageUri", "ArtifactBucket"]


def main(template_path, parameters_path):
    template, errors = decode(template_path)
    if errors or template is None:
        print(json.dumps({"problems": [f"{template_path}: {e}" for e in errors or ["unreadable"]]}))
        return
    with open(parameters_path) as f:
        given = json.load(f)
    declared = template.get("Parameters", {})
    problems = []
    values = {}
    for name, value in given.items():
        if name not in declared:
            problems.append(f"{name}: the template has no such parameter "
                            f"(it has {', '.join(sorted(declared))})")
    for name, spec in declared.items():
        if name in given:
            value = str(given[name])
        elif "Default" in spec:
            default = spec["Default"]
            value = ",".join(default) if isinstance(default, list) else str(default)
        else:
            problems.append(f"{name}: required, and not given")
            continue
        allowed = spec.get("AllowedValues")
        if allowed is not None and value not in [str(a) for a in allowed]:
            problems.append(f"{name}={value}: expected one of {', '.join(map(str, allowed))}")
        if spec.get("Type") == "Number":
            try:
                number = float(value)
            except ValueError:
                problems.append(f"{name}={value}: not a number")
            else:
                if "MinValue" in spec and number < float(spec["MinValue"]):
                    problems.append(f"{name}={value}: below its minimum {spec['MinValue']}")
                if "MaxValue" in spec and number > float(spec["MaxValue"]):
                    problems.append(f"{name}={value}: above its maximum {spec['MaxValue']}")
        values[name] = value

    if values.get("Target") == "aws":
        for name in AWS_REQUIRED:
            if not values.get(name):
                problems.append(f"{name}: target aws needs it ({declared[name].get('Description', '').strip()})")
        if not values.get("BrokerSecretArn") and not values.get("ExistingBrokerAmqpUrlSecretArn"):
            problems.append("BrokerSecretArn or ExistingBrokerAmqpUrlSecretArn: target aws needs "
                            "the broker's credentials (a new broker's) or an existing broker's URL")
        try:
            visibility = int(values["IngestVisibilityTimeout"])
            timeout = int(values["BatcherTimeout"])
            if visibility < 6 * timeout:
                problems.append(
                    f"IngestVisibilityTimeout={visibility} is under six times "
                    f"BatcherTimeout={timeout}: AWS refuses the event-source mapping; raise the "
                    f"visibility timeout to at least {6 * timeout} or shorten the function's")
        except (KeyError, ValueError):
            pass

    conditions = template.get("Conditions", {})
    memo = {}

    def value_of(node):
        if isinstance(node, dict) and "Ref" in node:
            return values.get(node["Ref"], node["Ref"])
        if isinstance(node, list):
            return [value_of(n) for n in node]
        return str(node)

    def holds(node):
        if isinstance(node, dict):
            if "Condition" in node:
                return condition(node["Condition"])
            if "Fn::Equals" in node:
                a, b = (value_of(n) for n in node["Fn::Equals"])
                return a == b
            if "Fn::Not" in node:
                return not holds(node["Fn::Not"][0])
            if "Fn::And" in node:
                return all(holds(n) for n in node["Fn::And"])
            if "Fn::Or" in node:
                return any(holds(n) for n in node["Fn::Or"])
        raise ValueError(f"a condition this planner does not read: {node!r}")

    def condition(name):
        if name not in memo:
            memo[name] = holds(conditions[name])
        return memo[name]

    resources, skipped = [], []
    for name, resource in template.get("Resources", {}).items():
        entry = {"name": name, "type": resource.get("Type"), "condition": resource.get("Condition")}
        (resources if not entry["condition"] or condition(entry["condition"]) else skipped).append(entry)
    outputs = [name for name, o in template.get("Outputs", {}).items()
               if not o.get("Condition") or condition(o["Condition"])]
    print(json.dumps({
        "parameters": values,
        "problems": problems,
        "conditions": {name: condition(name) for name in conditions},
        "resources": resources,
        "skipped": skipped,
        "outputs": outputs,
    }, indent=2))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
