//! The external provider: services someone else runs (real AWS or a LocalStack elsewhere, Amazon
//! MQ, a Snowflake account, a PostgreSQL server). Nothing is started or stopped; `infra/` is
//! still applied.

use std::time::Instant;

use crate::error::{Result, StackError, io_err};
use crate::up::{Phase, UpOptions, UpOutcome};
use crate::{apply, stack_dir};
use runtime::state::{Aws, Postgres, ProviderKind, RabbitMq, Snowflake, State};

fn var(name: &'static str, what: &'static str) -> Result<String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or(StackError::MissingEnv { name, what })
}

fn optional(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

pub(crate) async fn up(options: UpOptions) -> Result<UpOutcome> {
    let t0 = Instant::now();
    let infra = crate::infra_dir();
    let amqp_url = var(
        "SLUICE_AMQP_URL",
        "the broker, e.g. amqps://user:password@b-1234.mq.eu-west-1.amazonaws.com:5671/%2f",
    )?;
    let management_url = var(
        "SLUICE_RABBITMQ_MANAGEMENT_URL",
        "the broker's management API, e.g. https://b-1234.mq.eu-west-1.amazonaws.com",
    )?;
    let user = var(
        "SLUICE_RABBITMQ_USER",
        "a broker user allowed to import definitions",
    )?;
    let password = var("SLUICE_RABBITMQ_PASSWORD", "that user's password")?;
    let pg_url = var(
        "SLUICE_POSTGRES_URL",
        "postgres://user:password@host:5432/database",
    )?;
    let region = var("AWS_REGION", "the AWS region of the pipeline's resources")?;
    let snowflake = Snowflake {
        base_url: optional("SNOWFLAKE_URL"),
        account: var("SNOWFLAKE_ACCOUNT", "the Snowflake account identifier")?,
        user: var("SNOWFLAKE_USER", "the Snowflake user")?,
        database: optional("SNOWFLAKE_DATABASE").unwrap_or_else(|| "SLUICE".into()),
        password: None,
        process: None,
    };
    let config = snowflake::Config::from_state(&snowflake).map_err(|e| StackError::Apply {
        what: "snowflake".into(),
        reason: e.to_string(),
    })?;
    let mut aws = Aws {
        endpoint_url: optional("AWS_ENDPOINT_URL"),
        region,
        process: None,
        outputs: Default::default(),
        queue_timeouts: options.queue_timeouts,
    };

    let mut phases = Vec::new();
    apply::rabbitmq_definitions(&infra, &management_url, &user, &password).await?;
    phases.push(Phase {
        name: "rabbitmq definitions applied",
        done_after: t0.elapsed(),
    });
    apply::postgres(&infra, &pg_url).await?;
    phases.push(Phase {
        name: "postgres schema applied",
        done_after: t0.elapsed(),
    });
    let applied =
        apply::cloudformation(&infra, &options.name, &aws, &options.queue_timeouts).await?;
    aws.outputs = applied.outputs;
    aws.queue_timeouts = applied.queue_timeouts;
    phases.push(Phase {
        name: "cloudformation applied",
        done_after: t0.elapsed(),
    });
    let mut ddl_config = config;
    ddl_config.database = None;
    apply::snowflake(&infra, ddl_config, snowflake.base_url.is_none()).await?;
    phases.push(Phase {
        name: "snowflake DDL applied",
        done_after: t0.elapsed(),
    });

    let dir = stack_dir(&options.root, &options.name);
    std::fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
    let state = State {
        stack: options.name.clone(),
        provider: ProviderKind::External,
        created_at: chrono::Utc::now(),
        dir,
        rabbitmq: RabbitMq {
            amqp_url,
            management_url,
            user,
            password,
            process: None,
            epmd: None,
            node: None,
        },
        postgres: Postgres {
            url: pg_url,
            process: None,
        },
        aws,
        snowflake,
        containers: Vec::new(),
        docker_host: None,
    };
    state.save(&options.root)?;
    Ok(UpOutcome::Started {
        state,
        phases,
        elapsed: t0.elapsed(),
    })
}
