//! `cargo xtask deploy --dry-run` as a user runs it: the change set each target would create,
//! and the parameters it refuses, before anything reaches AWS (nothing here does). The planner
//! runs in the lint tools' venv (cfn-lint's template decoder), installed on first use.

use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn deploy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("deploy")
        .args(args)
        .current_dir(root())
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .expect("xtask runs")
}

/// What target aws needs, in a parameters file.
fn aws_parameters(extra: &str) -> PathBuf {
    let dir = root().join("target/sluice/test-deploy");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!(
        "params-{}.json",
        std::process::id() ^ extra.len() as u32
    ));
    std::fs::write(
        &path,
        format!(
            r#"{{"VpcId": "vpc-0abc", "SubnetIds": "subnet-a,subnet-b",
                "RelayImageUri": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/sluice-relay:1",
                "ArtifactBucket": "sluice-artifacts",
                "BrokerSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:mq"{extra}}}"#
        ),
    )
    .unwrap();
    path
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn the_aws_target_creates_the_compute_and_the_wiring() {
    let params = aws_parameters(
        r#", "SnowflakeIamUserArn": "arn:aws:iam::999999999999:user/sf", "SnowflakeExternalId": "ext-1""#,
    );
    let out = deploy(&[
        "--target",
        "aws",
        "--stack",
        "dry",
        "--parameters",
        params.to_str().unwrap(),
        "--dry-run",
    ]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("nothing was sent to AWS"), "{said}");
    let written = root().join("target/sluice/deploy/dry/change-set-aws.json");
    assert!(
        said.contains("target/sluice/deploy/dry/change-set-aws.json") && written.is_file(),
        "{said}"
    );
    let change_set: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&written).unwrap()).unwrap();
    let types: Vec<&str> = change_set["Creates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    for kind in [
        "AWS::AmazonMQ::Broker",
        "AWS::ECS::Service",
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        "AWS::Lambda::Function",
        "AWS::Lambda::EventSourceMapping",
        "AWS::SNS::TopicPolicy",
        "AWS::S3::Bucket",
        "AWS::SQS::Queue",
    ] {
        assert!(types.contains(&kind), "{kind} in {types:?}");
    }
    assert!(
        change_set["LeftOutByConditions"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // The external id stays out of what is written.
    let parameters = change_set["Parameters"].to_string();
    assert!(
        !parameters.contains("ext-1") && parameters.contains("****"),
        "{parameters}"
    );
}

#[test]
fn the_local_target_leaves_every_aws_only_resource_out() {
    let out = deploy(&["--target", "local", "--stack", "dry-local", "--dry-run"]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    let change_set: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root().join("target/sluice/deploy/dry-local/change-set-local.json"))
            .unwrap(),
    )
    .unwrap();
    let creates = change_set["Creates"].to_string();
    for kind in ["AmazonMQ", "ECS", "Lambda", "IAM", "ApplicationAutoScaling"] {
        assert!(
            !creates.contains(kind),
            "{kind} on the local target: {creates}"
        );
    }
    assert!(change_set["LeftOutByConditions"].as_array().unwrap().len() > 10);
    let outputs = change_set["Outputs"].to_string();
    assert!(outputs.contains("IngestQueueUrl") && !outputs.contains("BatcherFunctionArn"));
}

#[test]
fn parameters_that_cannot_deploy_are_refused_by_name() {
    // The event-source mapping's rule: visibility timeout >= 6 x the function's timeout.
    let params = aws_parameters(r#", "BatcherTimeout": 20, "IngestVisibilityTimeout": 60"#);
    let out = deploy(&[
        "--target",
        "aws",
        "--stack",
        "dry-bad",
        "--parameters",
        params.to_str().unwrap(),
        "--dry-run",
    ]);
    let said = text(&out);
    assert!(!out.status.success());
    assert!(
        said.contains("IngestVisibilityTimeout=60 is under six times BatcherTimeout=20"),
        "{said}"
    );
    // What target aws needs, named; an unknown parameter, named.
    let out = deploy(&[
        "--target",
        "aws",
        "--stack",
        "dry-bad",
        "--param",
        "RelayImageUri=x",
        "--param",
        "NoSuchThing=1",
        "--dry-run",
    ]);
    let said = text(&out);
    assert!(!out.status.success());
    for needed in [
        "VpcId: target aws needs it",
        "ArtifactBucket: target aws needs it",
        "NoSuchThing: the template has no such parameter",
    ] {
        assert!(said.contains(needed), "{needed} in:\n{said}");
    }
    assert!(
        !said.contains("RelayImageUri: target aws needs it"),
        "{said}"
    );
}
