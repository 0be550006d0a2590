//! `cargo xtask deploy`: the pipeline's template to a real account, as one CloudFormation change
//! set; `--dry-run` renders it without reaching AWS.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use serde::Deserialize;
use sha2::Digest as _;

use crate::stack_args::root;

#[derive(clap::Args)]
pub struct Args {
    /// The template's target: `aws` (the compute and the wiring too: Amazon MQ, the relay on
    /// ECS, the batcher as a Lambda with its event-source mapping, Snowpipe's role) or `local`
    /// (the data resources only, what `cargo xtask up` deploys on LocalStack).
    #[arg(long, value_enum)]
    target: Target,
    /// The Sluice stack name: the CloudFormation stack is `sluice-<NAME>`, which `cargo xtask
    /// up --provider external --stack NAME` then reads the Outputs of.
    #[arg(long, default_value = "default")]
    stack: stack::StackName,
    /// A JSON object of template parameters (e.g. {"VpcId": "vpc-1", "SubnetIds":
    /// "subnet-a,subnet-b", ...}).
    #[arg(long, value_name = "FILE")]
    parameters: Option<PathBuf>,
    /// One template parameter, KEY=VALUE (repeatable; wins over --parameters).
    #[arg(long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// Render the parameters and the change set (what it would create, what the Conditions
    /// leave out) and write them under target/sluice/deploy/<stack>/; nothing reaches AWS.
    #[arg(long)]
    dry_run: bool,
    /// The region to deploy to.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    region: String,
    /// An endpoint instead of AWS's (LocalStack, for trying the local target).
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    aws_endpoint_url: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Target {
    Aws,
    Local,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Aws => "aws",
            Target::Local => "local",
        }
    }
}

/// What infra/cloudformation/plan.py says of the template and the parameters.
#[derive(Debug, Deserialize, serde::Serialize)]
struct Plan {
    #[serde(default)]
    parameters: BTreeMap<String, String>,
    problems: Vec<String>,
    #[serde(default)]
    resources: Vec<Resource>,
    #[serde(default)]
    skipped: Vec<Resource>,
    #[serde(default)]
    outputs: Vec<String>,
}

#[derive(Debug, Deserialize, serde::Serialize)]
struct Resource {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    condition: Option<String>,
}

impl Args {
    pub fn run(self) -> anyhow::Result<()> {
        let root = root();
        let template = root.join("infra/cloudformation/pipeline.yaml");
        let mut parameters: BTreeMap<String, String> = match &self.parameters {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let values: BTreeMap<String, serde_json::Value> = serde_json::from_str(&text)
                    .with_context(|| {
                        format!("{}: expected a JSON object of parameters", path.display())
                    })?;
                values
                    .into_iter()
                    .map(|(k, v)| {
                        let v = match v {
                            serde_json::Value::String(s) => s,
                            other => other.to_string(),
                        };
                        (k, v)
                    })
                    .collect()
            }
            None => BTreeMap::new(),
        };
        for pair in &self.params {
            let (k, v) = pair
                .split_once('=')
                .with_context(|| format!("--param {pair}: expected KEY=VALUE"))?;
            parameters.insert(k.to_owned(), v.to_owned());
        }
        for fixed in ["StackName", "Target"] {
            if parameters.contains_key(fixed) {
                bail!("{fixed} comes from --stack and --target; leave it out of the parameters");
            }
        }
        parameters.insert("StackName".into(), self.stack.to_string());
        parameters.insert("Target".into(), self.target.name().into());

        let out = root.join("target/sluice/deploy").join(self.stack.as_str());
        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        let plan = plan(&template, &parameters, &out)?;
        if !plan.problems.is_empty() {
            bail!(
                "the parameters do not deploy (nothing was sent):\n  {}",
                plan.problems.join("\n  ")
            );
        }
        let body = std::fs::read(&template)?;
        let change_set = serde_json::json!({
            "StackName": format!("sluice-{}", self.stack),
            "ChangeSetName": format!("sluice-{}-{}", self.stack, chrono::Utc::now().format("%Y%m%d%H%M%S")),
            "ChangeSetType": "CREATE (UPDATE when the stack exists)",
            "Capabilities": ["CAPABILITY_IAM"],
            "TemplateBody": {
                "path": "infra/cloudformation/pipeline.yaml",
                "sha256": hex::encode(sha2::Sha256::digest(&body)),
                "bytes": body.len(),
            },
            "Parameters": plan.parameters.iter().map(|(k, v)| serde_json::json!({
                "ParameterKey": k,
                "ParameterValue": if is_secret(k) { "****".to_owned() } else { v.clone() },
            })).collect::<Vec<_>>(),
            "Creates": plan.resources,
            "LeftOutByConditions": plan.skipped,
            "Outputs": plan.outputs,
        });
        let path = out.join(format!("change-set-{}.json", self.target.name()));
        std::fs::write(&path, serde_json::to_vec_pretty(&change_set)?)
            .with_context(|| format!("writing {}", path.display()))?;

        let mut by_type: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for r in &plan.resources {
            by_type.entry(&r.kind).or_default().push(&r.name);
        }
        println!(
            "change set for sluice-{} (target {}): {} resources, {} left out by its Conditions",
            self.stack,
            self.target.name(),
            plan.resources.len(),
            plan.skipped.len()
        );
        for (kind, names) in &by_type {
            println!("  {kind:<45} {}", names.join(", "));
        }
        println!("  outputs: {}", plan.outputs.join(", "));
        println!("written: {}", path.display());
        if self.dry_run {
            println!("dry run: nothing was sent to AWS");
            return Ok(());
        }
        let aws = stack::Aws {
            endpoint_url: self.aws_endpoint_url.clone(),
            region: self.region.clone(),
            process: None,
            outputs: Default::default(),
            queue_timeouts: Default::default(),
        };
        let rt = tokio::runtime::Runtime::new()?;
        let outputs = rt.block_on(stack::deploy::deploy(
            stack::deploy::Deployment {
                stack: &self.stack,
                template_body: String::from_utf8(body)?,
                parameters: &plan.parameters,
                aws: &aws,
                timeout: std::time::Duration::from_secs(90 * 60),
            },
            &mut |line: &str| eprintln!("  {line}"),
        ))?;
        println!("deployed sluice-{}; outputs:", self.stack);
        for (k, v) in &outputs {
            println!("  {k} = {v}");
        }
        println!(
            "next: `cargo xtask up --provider external --stack {}` (it reads these outputs)",
            self.stack
        );
        Ok(())
    }
}

/// Parameters whose values stay out of what is printed and written.
fn is_secret(key: &str) -> bool {
    key == "SnowflakeExternalId"
}

fn plan(
    template: &Path,
    parameters: &BTreeMap<String, String>,
    out: &Path,
) -> anyhow::Result<Plan> {
    let venv = pytools::ensure(&pytools::ToolSet::lint(&root().join("infra/python")))?;
    let input = out.join("parameters.json");
    std::fs::write(&input, serde_json::to_vec_pretty(parameters)?)?;
    let output = Command::new(venv.python())
        .arg(root().join("infra/cloudformation/plan.py"))
        .arg(template)
        .arg(&input)
        .output()
        .context("running infra/cloudformation/plan.py")?;
    // The file held the secrets too: it is only the planner's input.
    let _ = std::fs::remove_file(&input);
    if !output.status.success() {
        bail!(
            "infra/cloudformation/plan.py failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "reading plan.py's answer: {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}
