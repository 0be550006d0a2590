//! The container provider: the same four services as the native one, as containers started
//! through testcontainers on a Docker engine ([`crate::engine`]).
//!
//! Images are Sluice's own ([`crate::images`], built here from pins), or for RabbitMQ and
//! PostgreSQL optionally the official ones from a registry. Every container carries the labels
//! [`LABEL_STACK`] and [`LABEL_CHECKOUT`], so what a crashed `up` left behind is found and removed
//! by the next `up` or `down` of the same stack, and nothing else is touched.
//!
//! The specifications are plain data, always compiled and unit-tested; starting them needs the
//! `containers` cargo feature.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::error::{Result, StackError};
use crate::images::Planned;
use crate::{StackName, images};

pub const LABEL_STACK: &str = "sluice.stack";
pub const LABEL_CHECKOUT: &str = "sluice.checkout";
pub const LABEL_SERVICE: &str = "sluice.service";

pub const RABBITMQ_AMQP: u16 = 5672;
pub const RABBITMQ_MANAGEMENT: u16 = 15672;
pub const POSTGRES: u16 = 5432;
/// Where infra/containers/postgres.Containerfile puts Sluice's start script.
const SLUICE_POSTGRES_START: &str = "/usr/local/bin/sluice-postgres";

/// Where the RabbitMQ and PostgreSQL images come from. LocalStack and fakesnow always come from
/// Sluice's pinned images (no auth token, nothing installed at start).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageChoice {
    /// Built here by `cargo xtask images` (no registry needed).
    #[default]
    Sluice,
    /// `rabbitmq:3.13-management` and `postgres:15`, pulled from a registry.
    Official,
}

/// Host ports (on 127.0.0.1) of a container stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostPorts {
    pub rabbitmq_amqp: u16,
    pub rabbitmq_management: u16,
    pub postgres: u16,
    /// LocalStack and fakesnow listen inside on the same port as outside, because the URLs they
    /// hand out (queue URLs, PUT targets) must work from the host.
    pub localstack: u16,
    pub fakesnow: u16,
}

/// Everything that makes a stack's containers.
pub struct Plan<'a> {
    pub stack: &'a StackName,
    pub checkout: String,
    pub images: &'a [Planned],
    pub choice: ImageChoice,
    pub ports: HostPorts,
    pub rabbitmq_user: &'a str,
    pub rabbitmq_password: &'a str,
    /// The definitions loaded at boot, with the stack's user.
    pub rabbitmq_definitions: serde_json::Value,
    pub postgres_user: &'a str,
    pub postgres_password: &'a str,
}

/// One service's container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerSpec {
    pub service: &'static str,
    pub repository: String,
    pub tag: String,
    pub env: Vec<(String, String)>,
    /// (inside, host) port pairs; published on 127.0.0.1 only.
    pub ports: Vec<(u16, u16)>,
    pub cmd: Vec<String>,
    /// Files copied in before the container starts: (path inside, content).
    pub files: Vec<(String, Vec<u8>)>,
    pub labels: Vec<(String, String)>,
}

/// A label value for a checkout, so two checkouts' stacks of the same name stay apart.
pub fn checkout_label(root: &Path) -> String {
    use sha2::Digest as _;
    let root = root.canonicalize().unwrap_or_else(|_| root.to_owned());
    let d = sha2::Sha256::digest(root.display().to_string().as_bytes());
    d[..6].iter().map(|b| format!("{b:02x}")).collect()
}

pub fn specs(plan: &Plan) -> Vec<ContainerSpec> {
    let image = |service: &str| {
        let p = plan
            .images
            .iter()
            .find(|p| p.service == service)
            .expect("a recipe per service");
        (p.repository().to_owned(), p.tag().to_owned())
    };
    let env = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    };
    let labels = |service: &str| {
        vec![
            (LABEL_STACK.to_owned(), plan.stack.to_string()),
            (LABEL_CHECKOUT.to_owned(), plan.checkout.clone()),
            (LABEL_SERVICE.to_owned(), service.to_owned()),
        ]
    };
    let official = plan.choice == ImageChoice::Official;
    let p = plan.ports;
    // Queue statistics every second, as in the native provider (the load test samples them).
    let rabbitmq_conf = format!(
        "listeners.tcp.default = {RABBITMQ_AMQP}\nmanagement.tcp.port = {RABBITMQ_MANAGEMENT}\n\
         load_definitions = /etc/rabbitmq/definitions.json\nloopback_users = none\n\
         collect_statistics_interval = 1000\n"
    );
    let (rabbit_repo, rabbit_tag) = if official {
        ("rabbitmq".to_owned(), "3.13-management".to_owned())
    } else {
        image("rabbitmq")
    };
    let (pg_repo, pg_tag) = if official {
        ("postgres".to_owned(), "15".to_owned())
    } else {
        image("postgres")
    };
    let (ls_repo, ls_tag) = image("localstack");
    let (fs_repo, fs_tag) = image("fakesnow");
    vec![
        ContainerSpec {
            service: "rabbitmq",
            repository: rabbit_repo,
            tag: rabbit_tag,
            env: vec![],
            ports: vec![
                (RABBITMQ_AMQP, p.rabbitmq_amqp),
                (RABBITMQ_MANAGEMENT, p.rabbitmq_management),
            ],
            cmd: vec![],
            files: vec![
                (
                    "/etc/rabbitmq/rabbitmq.conf".into(),
                    rabbitmq_conf.into_bytes(),
                ),
                (
                    "/etc/rabbitmq/definitions.json".into(),
                    serde_json::to_vec_pretty(&plan.rabbitmq_definitions).expect("json"),
                ),
            ],
            labels: labels("rabbitmq"),
        },
        ContainerSpec {
            service: "postgres",
            repository: pg_repo,
            tag: pg_tag,
            // The official image and Sluice's read the same variables.
            env: env(&[
                ("POSTGRES_USER", plan.postgres_user),
                ("POSTGRES_PASSWORD", plan.postgres_password),
                ("POSTGRES_DB", "postgres"),
            ]),
            ports: vec![(POSTGRES, p.postgres)],
            // A command replaces the image's CMD, so it names what to run: the server, or
            // Sluice's start script (which passes its arguments on to the server).
            cmd: if official {
                ["postgres", "-c", "fsync=off"]
                    .map(String::from)
                    .into_iter()
                    .chain(crate::native::postgres::settings_args())
                    .collect()
            } else {
                std::iter::once(SLUICE_POSTGRES_START.to_owned())
                    .chain(crate::native::postgres::settings_args())
                    .collect()
            },
            files: vec![],
            labels: labels("postgres"),
        },
        ContainerSpec {
            service: "localstack",
            repository: ls_repo,
            tag: ls_tag,
            env: env(&[
                ("GATEWAY_LISTEN", &format!("0.0.0.0:{}", p.localstack)),
                ("LOCALSTACK_HOST", &format!("127.0.0.1:{}", p.localstack)),
            ]),
            ports: vec![(p.localstack, p.localstack)],
            cmd: vec![],
            files: vec![],
            labels: labels("localstack"),
        },
        ContainerSpec {
            service: "fakesnow",
            repository: fs_repo,
            tag: fs_tag,
            env: vec![],
            ports: vec![(p.fakesnow, p.fakesnow)],
            cmd: vec!["-p".into(), p.fakesnow.to_string()],
            files: vec![],
            labels: labels("fakesnow"),
        },
    ]
}

/// The images a plan needs that the engine does not have; Sluice's are named with the command
/// that builds them.
pub fn missing_images(engine: &Engine, specs: &[ContainerSpec]) -> Result<()> {
    for s in specs {
        let image = format!("{}:{}", s.repository, s.tag);
        if s.repository.starts_with("sluice/") && !images::exists(engine, &image) {
            return Err(StackError::ImageMissing {
                service: s.service,
                image,
            });
        }
    }
    Ok(())
}

/// The ids of a stack's containers (running or not) by their labels.
pub fn labelled(engine: &Engine, stack: &StackName, checkout: &str) -> Result<Vec<String>> {
    let out = engine.run(&[
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        &format!("label={LABEL_STACK}={stack}"),
        "--filter",
        &format!("label={LABEL_CHECKOUT}={checkout}"),
    ])?;
    Ok(out.lines().map(str::to_owned).collect())
}

/// Removes containers (and their anonymous volumes) by id.
pub fn remove(engine: &Engine, ids: &[String]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut args = vec!["rm", "-f", "-v"];
    args.extend(ids.iter().map(String::as_str));
    engine.run(&args).map(|_| ())
}

/// Whether a container runs.
pub fn running(engine: &Engine, id: &str) -> bool {
    engine
        .run(&["inspect", "--format", "{{.State.Running}}", id])
        .is_ok_and(|s| s == "true")
}

/// The last lines of a container's output, for an error.
pub fn logs_tail(engine: &Engine, id: &str, lines: usize) -> String {
    let out = engine
        .docker()
        .args(["logs", "--tail", &lines.to_string(), id])
        .output();
    match out {
        Ok(o) => format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => format!("(docker logs failed: {e})"),
    }
}

#[cfg(feature = "containers")]
pub(crate) mod runner;

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_with(choice: ImageChoice, f: impl FnOnce(&Plan)) {
        let name: StackName = "t".parse().unwrap();
        let images = images::plan(&crate::infra_dir()).unwrap();
        let plan = Plan {
            stack: &name,
            checkout: "abc".into(),
            images: &images,
            choice,
            ports: HostPorts {
                rabbitmq_amqp: 1,
                rabbitmq_management: 2,
                postgres: 3,
                localstack: 4,
                fakesnow: 5,
            },
            rabbitmq_user: "sluice",
            rabbitmq_password: "rpw",
            rabbitmq_definitions: serde_json::json!({"users": [{"name": "sluice"}]}),
            postgres_user: "sluice",
            postgres_password: "ppw",
        };
        f(&plan)
    }

    #[test]
    fn every_service_runs_from_its_pinned_image_with_labels_and_loopback_ports() {
        plan_with(ImageChoice::Sluice, |plan| {
            let specs = specs(plan);
            let names: Vec<&str> = specs.iter().map(|s| s.service).collect();
            assert_eq!(names, ["rabbitmq", "postgres", "localstack", "fakesnow"]);
            for (s, p) in specs.iter().zip(plan.images) {
                assert_eq!(format!("{}:{}", s.repository, s.tag), p.image);
                assert!(
                    s.labels.contains(&(LABEL_STACK.to_owned(), "t".to_owned()))
                        && s.labels.contains(&(LABEL_CHECKOUT.into(), "abc".into())),
                    "{}",
                    s.service
                );
            }
            assert_eq!(specs[0].ports, [(5672, 1), (15672, 2)]);
            assert_eq!(specs[2].ports, [(4, 4)], "localstack: same port inside");
            assert!(
                specs[1]
                    .env
                    .contains(&("POSTGRES_PASSWORD".into(), "ppw".into()))
            );
            assert!(
                specs[2]
                    .env
                    .contains(&("LOCALSTACK_HOST".into(), "127.0.0.1:4".into()))
            );
            assert!(
                !specs[2]
                    .env
                    .iter()
                    .any(|(k, _)| k == "LOCALSTACK_AUTH_TOKEN"),
                "Sluice's LocalStack needs no token"
            );
            assert_eq!(specs[3].cmd, ["-p", "5"]);
            // A command replaces the image's CMD: it must start with the start script the
            // image installs, then the server settings the script passes on.
            let containerfile = std::fs::read_to_string(
                crate::infra_dir().join("containers/postgres.Containerfile"),
            )
            .unwrap();
            assert!(
                containerfile.contains(&format!("postgres-start.sh {SLUICE_POSTGRES_START}")),
                "{containerfile}"
            );
            assert_eq!(specs[1].cmd[0], SLUICE_POSTGRES_START);
            assert!(specs[1].cmd.contains(&"wal_level=logical".to_owned()));
            assert!(
                specs[1]
                    .cmd
                    .contains(&"track_commit_timestamp=on".to_owned())
            );
            let defs = String::from_utf8(specs[0].files[1].1.clone()).unwrap();
            assert!(defs.contains("sluice"), "{defs}");
        });
    }

    #[test]
    fn official_images_replace_only_rabbitmq_and_postgres() {
        plan_with(ImageChoice::Official, |plan| {
            let specs = specs(plan);
            assert_eq!(
                (specs[0].repository.as_str(), specs[0].tag.as_str()),
                ("rabbitmq", "3.13-management")
            );
            assert_eq!(
                (specs[1].repository.as_str(), specs[1].tag.as_str()),
                ("postgres", "15")
            );
            assert!(specs[1].cmd.contains(&"wal_level=logical".to_owned()));
            assert!(specs[2].repository.starts_with("sluice/"));
            assert!(specs[3].repository.starts_with("sluice/"));
        });
    }

    #[test]
    fn checkouts_get_different_labels() {
        assert_ne!(
            checkout_label(Path::new("/a")),
            checkout_label(Path::new("/b"))
        );
        assert_eq!(
            checkout_label(Path::new("/a")),
            checkout_label(Path::new("/a"))
        );
    }
}
