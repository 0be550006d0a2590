//! The container provider: the same four services as the native one, as containers started
//! through testcontainers where a Docker engine answers.
//!
//! The container specifications are plain data, always compiled and unit-tested; starting them
//! needs the `containers` cargo feature (and an engine at run time). Recent LocalStack images
//! need `LOCALSTACK_AUTH_TOKEN`, which is passed through from the environment when set.

use std::time::Duration;

/// One service's container: image, environment, ports and the log line that says it is up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerSpec {
    pub service: &'static str,
    pub image: &'static str,
    pub tag: &'static str,
    pub env: Vec<(String, String)>,
    /// Ports inside the container, published on the host.
    pub ports: Vec<u16>,
    /// A line on stdout that marks readiness (the protocol probes run afterwards as well).
    pub ready_line: &'static str,
    pub cmd: Vec<String>,
    pub startup_timeout: Duration,
}

pub const RABBITMQ_AMQP: u16 = 5672;
pub const RABBITMQ_MANAGEMENT: u16 = 15672;
pub const POSTGRES: u16 = 5432;
pub const LOCALSTACK: u16 = 4566;
pub const FAKESNOW: u16 = 8080;

/// The containers of a stack, with its generated credentials.
pub fn specs(
    rabbitmq_password: &str,
    postgres_password: &str,
    localstack_auth_token: Option<&str>,
) -> Vec<ContainerSpec> {
    let env = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    };
    let mut localstack_env = env(&[
        ("SERVICES", "s3,sqs,sns,cloudformation"),
        ("EAGER_SERVICE_LOADING", "1"),
        ("SQS_ENDPOINT_STRATEGY", "path"),
    ]);
    if let Some(token) = localstack_auth_token {
        localstack_env.push(("LOCALSTACK_AUTH_TOKEN".into(), token.into()));
    }
    vec![
        ContainerSpec {
            service: "rabbitmq",
            image: "rabbitmq",
            tag: "3.13-management",
            env: env(&[
                ("RABBITMQ_DEFAULT_USER", "sluice"),
                ("RABBITMQ_DEFAULT_PASS", rabbitmq_password),
            ]),
            ports: vec![RABBITMQ_AMQP, RABBITMQ_MANAGEMENT],
            ready_line: "Server startup complete",
            cmd: vec![],
            startup_timeout: Duration::from_secs(120),
        },
        ContainerSpec {
            service: "postgres",
            image: "postgres",
            tag: "15",
            env: env(&[
                ("POSTGRES_USER", "sluice"),
                ("POSTGRES_PASSWORD", postgres_password),
                ("POSTGRES_DB", "postgres"),
            ]),
            ports: vec![POSTGRES],
            ready_line: "database system is ready to accept connections",
            cmd: vec![],
            startup_timeout: Duration::from_secs(60),
        },
        ContainerSpec {
            service: "localstack",
            image: "localstack/localstack",
            tag: "4.13.1",
            env: localstack_env,
            ports: vec![LOCALSTACK],
            ready_line: "Ready.",
            cmd: vec![],
            startup_timeout: Duration::from_secs(120),
        },
        ContainerSpec {
            service: "fakesnow",
            image: "python",
            tag: "3.11-slim",
            env: vec![],
            ports: vec![FAKESNOW],
            ready_line: "Uvicorn running",
            cmd: vec![
                "sh".into(),
                "-c".into(),
                format!(
                    "pip install --no-cache-dir 'fakesnow[server]==0.12.1' snowflake-connector-python==3.18.1 \
                     && exec fakesnow -s --host 0.0.0.0 -p {FAKESNOW}"
                ),
            ],
            startup_timeout: Duration::from_secs(300),
        },
    ]
}

/// Whether a Docker engine answers (the client alone is not enough).
pub fn docker_engine_answers() -> bool {
    std::process::Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(feature = "containers")]
pub(crate) mod runner {
    use std::collections::BTreeMap;
    use std::time::Instant;

    use testcontainers::core::{IntoContainerPort, WaitFor};
    use testcontainers::runners::AsyncRunner;
    use testcontainers::{GenericImage, ImageExt};

    use super::*;
    use crate::error::{Result, StackError, io_err};
    use crate::up::{Phase, UpOptions, UpOutcome};
    use crate::{apply, native, readiness, stack_dir};
    use runtime::state::{
        Aws, ContainerRecord, Postgres, ProviderKind, RabbitMq, Snowflake, State,
    };

    fn failed(service: &'static str, e: impl std::fmt::Display) -> StackError {
        StackError::NotReady {
            service,
            seconds: 0,
            reason: e.to_string(),
            log: Default::default(),
            tail: String::new(),
        }
    }

    /// Starts a spec; returns the container id and its published ports.
    async fn start(spec: &ContainerSpec) -> Result<(String, BTreeMap<u16, u16>)> {
        let mut image = GenericImage::new(spec.image, spec.tag)
            .with_wait_for(WaitFor::message_on_stdout(spec.ready_line));
        for port in &spec.ports {
            image = image.with_exposed_port(port.tcp());
        }
        let mut request = image.with_startup_timeout(spec.startup_timeout);
        for (k, v) in &spec.env {
            request = request.with_env_var(k, v);
        }
        if !spec.cmd.is_empty() {
            request = request.with_cmd(spec.cmd.clone());
        }
        let container = request.start().await.map_err(|e| failed(spec.service, e))?;
        let mut ports = BTreeMap::new();
        for port in &spec.ports {
            ports.insert(
                *port,
                container
                    .get_host_port_ipv4(*port)
                    .await
                    .map_err(|e| failed(spec.service, e))?,
            );
        }
        let id = container.id().to_owned();
        // The stack outlives this process; `down` removes the container by its id.
        std::mem::forget(container);
        Ok((id, ports))
    }

    pub(crate) async fn up(options: UpOptions) -> Result<UpOutcome> {
        let t0 = Instant::now();
        let infra = crate::infra_dir();
        let (rabbit_pw, pg_pw) = (native::secret(), native::secret());
        let token = std::env::var("LOCALSTACK_AUTH_TOKEN").ok();
        let specs = specs(&rabbit_pw, &pg_pw, token.as_deref());
        let mut records = Vec::new();
        let mut ports = BTreeMap::new();
        for spec in &specs {
            match start(spec).await {
                Ok((id, p)) => {
                    records.push(ContainerRecord {
                        service: spec.service.into(),
                        id,
                    });
                    ports.insert(spec.service, p);
                }
                Err(e) => {
                    super::remove_containers(&records);
                    return Err(e);
                }
            }
        }
        let result = async {
            let rabbit = &ports["rabbitmq"];
            let management_url = format!("http://127.0.0.1:{}", rabbit[&RABBITMQ_MANAGEMENT]);
            let http = readiness::http_client();
            readiness::wait("rabbitmq", None, Duration::from_secs(60), || {
                readiness::rabbitmq(&http, &management_url, "sluice", &rabbit_pw)
            })
            .await?;
            apply::rabbitmq_definitions(&infra, &management_url, "sluice", &rabbit_pw).await?;
            let pg_url = format!(
                "postgres://sluice:{pg_pw}@127.0.0.1:{}/postgres",
                ports["postgres"][&POSTGRES]
            );
            readiness::wait("postgres", None, Duration::from_secs(60), || {
                readiness::postgres(&pg_url)
            })
            .await?;
            apply::postgres(&infra, &pg_url).await?;
            let endpoint = format!("http://127.0.0.1:{}", ports["localstack"][&LOCALSTACK]);
            readiness::wait("localstack", None, Duration::from_secs(60), || {
                readiness::localstack(&http, &endpoint)
            })
            .await?;
            let mut aws = Aws {
                endpoint_url: Some(endpoint),
                region: "us-east-1".into(),
                process: None,
                outputs: Default::default(),
            };
            aws.outputs = apply::cloudformation(&infra, &options.name, &aws).await?;
            let base = format!("http://127.0.0.1:{}", ports["fakesnow"][&FAKESNOW]);
            let config = snowflake::Config::fakesnow(&base).map_err(|e| failed("fakesnow", e))?;
            readiness::wait("fakesnow", None, Duration::from_secs(60), || {
                readiness::snowflake(config.clone())
            })
            .await?;
            apply::snowflake(&infra, config, false).await?;
            let dir = stack_dir(&options.root, &options.name);
            std::fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
            let state = State {
                stack: options.name.clone(),
                provider: ProviderKind::Containers,
                created_at: chrono::Utc::now(),
                dir,
                rabbitmq: RabbitMq {
                    amqp_url: format!(
                        "amqp://sluice:{rabbit_pw}@127.0.0.1:{}/%2f",
                        rabbit[&RABBITMQ_AMQP]
                    ),
                    management_url,
                    user: "sluice".into(),
                    password: rabbit_pw.clone(),
                    process: None,
                    epmd: None,
                    node: None,
                },
                postgres: Postgres {
                    url: pg_url,
                    process: None,
                },
                aws,
                snowflake: Snowflake {
                    base_url: Some(base),
                    account: "fakesnow".into(),
                    user: "sluice".into(),
                    database: "SLUICE".into(),
                    password: Some("sluice".into()),
                    process: None,
                },
                containers: records.clone(),
            };
            state.save(&options.root)?;
            Ok(state)
        }
        .await;
        match result {
            Ok(state) => Ok(UpOutcome::Started {
                state,
                phases: vec![Phase {
                    name: "containers ready and applied",
                    done_after: t0.elapsed(),
                }],
                elapsed: t0.elapsed(),
            }),
            Err(e) => {
                super::remove_containers(&records);
                Err(e)
            }
        }
    }
}

/// Removes containers by id with the Docker CLI (used by `down`, which needs no feature).
pub(crate) fn remove_containers(records: &[runtime::state::ContainerRecord]) {
    for record in records {
        let status = std::process::Command::new("docker")
            .args(["rm", "-f", "-v", &record.id])
            .output();
        if !status.is_ok_and(|s| s.status.success()) {
            tracing::warn!(service = %record.service, id = %record.id, "could not remove container; remove it with `docker rm -f`");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_service_has_a_pinned_image_ports_and_a_ready_line() {
        let specs = specs("rpw", "ppw", None);
        let names: Vec<&str> = specs.iter().map(|s| s.service).collect();
        assert_eq!(names, ["rabbitmq", "postgres", "localstack", "fakesnow"]);
        for s in &specs {
            assert!(
                !s.tag.is_empty() && s.tag != "latest",
                "{}: pinned tag",
                s.service
            );
            assert!(
                !s.ports.is_empty() && !s.ready_line.is_empty(),
                "{}",
                s.service
            );
        }
        assert!(
            specs[0]
                .env
                .contains(&("RABBITMQ_DEFAULT_PASS".into(), "rpw".into()))
        );
        assert!(
            specs[1]
                .env
                .contains(&("POSTGRES_PASSWORD".into(), "ppw".into()))
        );
        assert!(
            specs[3].cmd[2].contains("fakesnow[server]==0.12.1"),
            "same pin as infra/python"
        );
    }

    #[test]
    fn the_localstack_auth_token_is_passed_only_when_set() {
        let without = specs("r", "p", None);
        assert!(
            !without[2]
                .env
                .iter()
                .any(|(k, _)| k == "LOCALSTACK_AUTH_TOKEN")
        );
        let with = specs("r", "p", Some("tok"));
        assert!(
            with[2]
                .env
                .contains(&("LOCALSTACK_AUTH_TOKEN".into(), "tok".into()))
        );
        assert!(
            with[2]
                .env
                .contains(&("SERVICES".into(), "s3,sqs,sns,cloudformation".into()))
        );
    }
}
