//! `cargo xtask deploy`: the template to an account as one CloudFormation change set (created,
//! waited for, executed, waited for), for a stack `up --provider external` then reads.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_cloudformation::error::DisplayErrorContext;
use aws_sdk_cloudformation::types::{
    Capability, ChangeSetStatus, ChangeSetType, Parameter, StackStatus,
};

use crate::StackName;
use crate::error::{Result, apply_err};
use runtime::state::Aws;

/// What to deploy.
pub struct Deployment<'a> {
    pub stack: &'a StackName,
    pub template_body: String,
    pub parameters: &'a BTreeMap<String, String>,
    pub aws: &'a Aws,
    /// How long the whole deployment may take (an Amazon MQ broker takes about 20 minutes).
    pub timeout: Duration,
}

/// Deploys and returns the stack's Outputs; `progress` hears each status change.
pub async fn deploy(
    d: Deployment<'_>,
    progress: &mut dyn FnMut(&str),
) -> Result<BTreeMap<String, String>> {
    let cf_stack = format!("sluice-{}", d.stack);
    let what = format!(
        "change set of {cf_stack} on {}",
        d.aws.endpoint_url.as_deref().unwrap_or("AWS")
    );
    let err = |e: String| apply_err(&what)(e);
    let cf = aws_sdk_cloudformation::Client::new(&runtime::aws::sdk_config(d.aws).await);
    let exists = cf
        .describe_stacks()
        .stack_name(&cf_stack)
        .send()
        .await
        .is_ok_and(|out| {
            out.stacks()
                .first()
                .and_then(|s| s.stack_status())
                .is_some_and(|s| {
                    *s != StackStatus::DeleteComplete && *s != StackStatus::ReviewInProgress
                })
        });
    let change_set = format!(
        "sluice-{}-{}",
        d.stack,
        chrono::Utc::now().format("%Y%m%d%H%M%S")
    );
    cf.create_change_set()
        .stack_name(&cf_stack)
        .change_set_name(&change_set)
        .change_set_type(if exists {
            ChangeSetType::Update
        } else {
            ChangeSetType::Create
        })
        .template_body(d.template_body)
        .capabilities(Capability::CapabilityIam)
        .set_parameters(Some(
            d.parameters
                .iter()
                .map(|(k, v)| {
                    Parameter::builder()
                        .parameter_key(k)
                        .parameter_value(v)
                        .build()
                })
                .collect(),
        ))
        .send()
        .await
        .map_err(|e| err(DisplayErrorContext(e).to_string()))?;
    progress(&format!("created change set {change_set}"));
    let deadline = Instant::now() + d.timeout;
    loop {
        let described = cf
            .describe_change_set()
            .stack_name(&cf_stack)
            .change_set_name(&change_set)
            .send()
            .await
            .map_err(|e| err(DisplayErrorContext(e).to_string()))?;
        match described.status() {
            Some(ChangeSetStatus::CreateComplete) => {
                progress(&format!(
                    "change set ready: {} changes",
                    described.changes().len()
                ));
                break;
            }
            Some(ChangeSetStatus::Failed) => {
                let reason = described.status_reason().unwrap_or("no reason given");
                if reason.contains("didn't contain changes") || reason.contains("No updates") {
                    progress("nothing to change");
                    return outputs(&cf, &cf_stack, &err).await;
                }
                return Err(err(format!("the change set failed: {reason}")));
            }
            _ if Instant::now() > deadline => {
                return Err(err(format!("not ready within {:?}", d.timeout)));
            }
            _ => tokio::time::sleep(Duration::from_secs(2)).await,
        }
    }
    cf.execute_change_set()
        .stack_name(&cf_stack)
        .change_set_name(&change_set)
        .send()
        .await
        .map_err(|e| err(DisplayErrorContext(e).to_string()))?;
    let mut last = None;
    loop {
        let described = cf
            .describe_stacks()
            .stack_name(&cf_stack)
            .send()
            .await
            .map_err(|e| err(DisplayErrorContext(e).to_string()))?;
        let stack = described
            .stacks()
            .first()
            .ok_or_else(|| err("the stack vanished".into()))?;
        let status = stack.stack_status().cloned();
        if status != last {
            progress(&format!("{cf_stack}: {status:?}"));
            last.clone_from(&status);
        }
        match status {
            Some(StackStatus::CreateComplete | StackStatus::UpdateComplete) => {
                return outputs(&cf, &cf_stack, &err).await;
            }
            Some(s) if s.as_str().ends_with("_IN_PROGRESS") && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            other => {
                let reason = stack.stack_status_reason().unwrap_or("no reason given");
                return Err(err(format!(
                    "{cf_stack} is {other:?}: {reason} (its events: `aws cloudformation \
                     describe-stack-events --stack-name {cf_stack}`)"
                )));
            }
        }
    }
}

async fn outputs(
    cf: &aws_sdk_cloudformation::Client,
    cf_stack: &str,
    err: &dyn Fn(String) -> crate::StackError,
) -> Result<BTreeMap<String, String>> {
    let described = cf
        .describe_stacks()
        .stack_name(cf_stack)
        .send()
        .await
        .map_err(|e| err(DisplayErrorContext(e).to_string()))?;
    Ok(described
        .stacks()
        .first()
        .map(|s| {
            s.outputs()
                .iter()
                .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
                .collect()
        })
        .unwrap_or_default())
}
