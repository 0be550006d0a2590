use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Result, StackError, io_err};
use crate::native::{self, Binaries, Ports, fakesnow, localstack, postgres, rabbitmq};
use crate::{StackName, apply, readiness, stack_dir, stop_processes};
use runtime::state::ProcessInfo;
use runtime::state::{Aws, Postgres, ProviderKind, RabbitMq, Snowflake, State};

#[derive(Clone, Debug)]
pub struct UpOptions {
    /// The checkout: stacks live under `<root>/target/sluice/`.
    pub root: PathBuf,
    pub name: StackName,
    pub provider: ProviderKind,
    pub ports: Ports,
    pub binaries: Binaries,
    /// Stop what was started and return `Interrupted` on Ctrl-C (for interactive use).
    pub stop_on_ctrl_c: bool,
    /// Where the container provider's RabbitMQ and PostgreSQL images come from.
    pub images: crate::containers::ImageChoice,
    /// The queues' timeouts the pipeline's template is created with.
    pub queue_timeouts: runtime::QueueTimeouts,
}

/// How long a step took, counted from the start of `up`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Phase {
    pub name: &'static str,
    pub done_after: Duration,
}

#[derive(Debug)]
pub enum UpOutcome {
    /// The stack was already up; nothing was changed.
    AlreadyRunning(State),
    Started {
        state: State,
        phases: Vec<Phase>,
        elapsed: Duration,
    },
}

/// Brings a stack up, or reports the one that is already running.
pub async fn up(options: UpOptions) -> Result<UpOutcome> {
    match State::load(&options.root, &options.name) {
        Ok(state) if crate::alive(&state) => {
            return Ok(UpOutcome::AlreadyRunning(state));
        }
        Ok(stale) => {
            tracing::warn!(stack = %options.name, "stale state: some processes or containers are gone; stopping the rest and starting afresh");
            stop_processes(&stale.processes());
            crate::remove_containers_of(&options.root, &stale);
            let dir = stack_dir(&options.root, &options.name);
            std::fs::remove_dir_all(&dir).map_err(io_err(format!("removing {}", dir.display())))?;
        }
        Err(runtime::StateError::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    match options.provider {
        ProviderKind::Native => native_up(options).await,
        ProviderKind::External => crate::external::up(options).await,
        ProviderKind::Containers => containers_up(options).await,
    }
}

#[cfg(feature = "containers")]
async fn containers_up(options: UpOptions) -> Result<UpOutcome> {
    crate::containers::runner::up(options).await
}

#[cfg(not(feature = "containers"))]
async fn containers_up(_: UpOptions) -> Result<UpOutcome> {
    Err(StackError::ProviderUnavailable {
        provider: "containers",
        reason: "this build has no container provider (build xtask with `--features containers`); use --provider native".into(),
    })
}

/// Processes started so far, so a failure or Ctrl-C stops exactly those.
#[derive(Clone, Default)]
struct Started(Arc<Mutex<Vec<(&'static str, ProcessInfo)>>>);

impl Started {
    fn add(&self, name: &'static str, p: &ProcessInfo) {
        self.0.lock().expect("lock").push((name, p.clone()));
    }
    fn stop_all(&self) {
        let all = self.0.lock().expect("lock").clone();
        let refs: Vec<(&'static str, &ProcessInfo)> = all.iter().map(|(n, p)| (*n, p)).collect();
        stop_processes(&refs);
    }
}

#[derive(Clone, Default)]
pub(crate) struct Phases(Arc<Mutex<Vec<Phase>>>, Option<Instant>);

impl Phases {
    pub(crate) fn starting_now() -> Self {
        Phases(Default::default(), Some(Instant::now()))
    }

    pub(crate) fn take(&self) -> Vec<Phase> {
        self.0.lock().expect("lock").clone()
    }

    pub(crate) fn mark(&self, name: &'static str) {
        let done_after = self.1.map(|t| t.elapsed()).unwrap_or_default();
        tracing::info!(phase = name, ?done_after, "done");
        self.0
            .lock()
            .expect("lock")
            .push(Phase { name, done_after });
    }
}

async fn native_up(options: UpOptions) -> Result<UpOutcome> {
    let started = Started::default();
    let dir = stack_dir(&options.root, &options.name);
    let work = native_up_inner(&options, &started);
    let result = if options.stop_on_ctrl_c {
        tokio::select! {
            r = work => r,
            _ = tokio::signal::ctrl_c() => Err(StackError::Interrupted),
        }
    } else {
        work.await
    };
    match &result {
        Ok(_) => {}
        Err(StackError::Interrupted) => {
            started.stop_all();
            let _ = std::fs::remove_dir_all(&dir);
        }
        Err(_) => {
            started.stop_all();
            // Keep the logs of a failed start for whoever reads the error; drop the data.
            let _ = std::fs::remove_dir_all(dir.join("postgres/data"));
            let _ = std::fs::remove_dir_all(dir.join("rabbitmq/mnesia"));
            let _ = std::fs::remove_file(dir.join("state.json"));
        }
    }
    result
}

async fn native_up_inner(options: &UpOptions, started: &Started) -> Result<UpOutcome> {
    let t0 = Instant::now();
    let phases = Phases(Default::default(), Some(t0));
    let infra = crate::infra_dir();
    let name = &options.name;

    // Everything that can be wrong with the input is checked before anything starts.
    let sbin = rabbitmq::find_sbin(options.binaries.rabbitmq_sbin.as_deref())?;
    let bindir = postgres::find_bindir(options.binaries.postgres_bindir.as_deref())?;
    let mut held = Vec::new();
    let mut port = |service: &'static str, requested: Option<u16>| -> Result<u16> {
        let listener = match requested {
            Some(port) => std::net::TcpListener::bind(("127.0.0.1", port))
                .map_err(|_| StackError::PortInUse { service, port })?,
            // This stack's usual port when it is free (bookmarks keep working, and dbt's
            // partial parsing, which hashes the warehouse port, survives a down and up),
            // else any free one.
            None => bind_free_port(name, service)
                .map_err(|_| StackError::PortInUse { service, port: 0 })?,
        };
        let port = listener
            .local_addr()
            .map_err(io_err("local address"))?
            .port();
        held.push(listener); // held until spawn, so no two services get the same free port
        Ok(port)
    };
    let rabbit_plan = rabbitmq::Plan {
        dir: stack_dir(&options.root, name).join("rabbitmq"),
        node: format!("sluice-{name}@localhost"),
        amqp_port: port("rabbitmq", options.ports.rabbitmq)?,
        management_port: port("rabbitmq management", None)?,
        dist_port: port("rabbitmq distribution", None)?,
        epmd_port: port("epmd", None)?,
        user: "sluice".into(),
        password: native::secret(),
    };
    let pg_plan = postgres::Plan {
        dir: stack_dir(&options.root, name).join("postgres"),
        port: port("postgres", options.ports.postgres)?,
        user: "sluice".into(),
        password: native::secret(),
    };
    let localstack_port = port("localstack", options.ports.localstack)?;
    let fakesnow_port = port("fakesnow", options.ports.fakesnow)?;
    let dir = stack_dir(&options.root, name);
    std::fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
    drop(held);

    // RabbitMQ boots slowest (about 7 s): start it first and overlap everything else.
    let (epmd, rabbit) = rabbitmq::start(&rabbit_plan, &sbin, &infra)?;
    started.add("epmd", &epmd);
    started.add("rabbitmq", &rabbit);
    let pg = postgres::start(&pg_plan, &bindir)?;
    started.add("postgres", &pg);

    let http = readiness::http_client();
    let management_url = format!("http://127.0.0.1:{}", rabbit_plan.management_port);
    let rabbit_ready = async {
        readiness::wait("rabbitmq", Some(&rabbit), Duration::from_secs(90), || {
            readiness::rabbitmq(
                &http,
                &management_url,
                &rabbit_plan.user,
                &rabbit_plan.password,
            )
        })
        .await?;
        let amqp_url = rabbit_plan.amqp_url();
        readiness::wait("rabbitmq", Some(&rabbit), Duration::from_secs(60), || {
            readiness::amqp(&amqp_url)
        })
        .await?;
        phases.mark("rabbitmq ready");
        phases.mark("rabbitmq definitions applied");
        Ok::<_, StackError>(())
    };
    let pg_url = pg_plan.url();
    let pg_ready = async {
        readiness::wait("postgres", Some(&pg), Duration::from_secs(60), || {
            readiness::postgres(&pg_url)
        })
        .await?;
        phases.mark("postgres ready");
        apply::postgres(&infra, &pg_url).await?;
        phases.mark("postgres schema applied");
        Ok::<_, StackError>(())
    };
    let localstack_endpoint = format!("http://127.0.0.1:{localstack_port}");
    let aws = Aws {
        endpoint_url: Some(localstack_endpoint.clone()),
        region: "us-east-1".into(),
        process: None,
        outputs: Default::default(),
        queue_timeouts: options.queue_timeouts,
    };
    let localstack_ready = async {
        let tools = localstack::tools(&infra);
        let venv = tokio::task::spawn_blocking(move || pytools::ensure(&tools))
            .await
            .expect("join")?;
        let p = localstack::start(&venv, &dir, localstack_port)?;
        started.add("localstack", &p);
        readiness::wait("localstack", Some(&p), Duration::from_secs(90), || {
            readiness::localstack(&http, &localstack_endpoint)
        })
        .await?;
        phases.mark("localstack ready");
        let applied = apply::cloudformation(&infra, name, &aws, &options.queue_timeouts).await?;
        phases.mark("cloudformation applied");
        Ok::<_, StackError>((p, applied))
    };
    let snowflake_state = Snowflake {
        base_url: Some(format!("http://127.0.0.1:{fakesnow_port}")),
        account: "fakesnow".into(),
        user: "sluice".into(),
        database: "SLUICE".into(),
        password: Some("sluice".into()),
        process: None,
    };
    let fakesnow_ready = async {
        let tools = pytools::ToolSet::warehouse(&infra.join("python"));
        let venv = tokio::task::spawn_blocking(move || pytools::ensure(&tools))
            .await
            .expect("join")?;
        let p = fakesnow::start(&venv, &dir, fakesnow_port)?;
        started.add("fakesnow", &p);
        let base = snowflake_state.base_url.clone().expect("set above");
        readiness::wait("fakesnow", Some(&p), Duration::from_secs(60), || async {
            readiness::snowflake(snowflake::Config::fakesnow(&base).map_err(|e| e.to_string())?)
                .await
        })
        .await?;
        phases.mark("fakesnow ready");
        // The database does not exist before the DDL, so it is applied from a session without one.
        let config = snowflake::Config::fakesnow(&base).map_err(|e| StackError::Apply {
            what: "snowflake".into(),
            reason: e.to_string(),
        })?;
        apply::snowflake(&infra, config, false).await?;
        phases.mark("snowflake DDL applied");
        Ok::<_, StackError>(p)
    };
    let (r, p, l, f) = tokio::join!(rabbit_ready, pg_ready, localstack_ready, fakesnow_ready);
    r?;
    p?;
    let (localstack_process, applied) = l?;
    let fakesnow_process = f?;

    let state = State {
        stack: name.clone(),
        provider: ProviderKind::Native,
        created_at: chrono::Utc::now(),
        dir: dir.clone(),
        rabbitmq: RabbitMq {
            amqp_url: rabbit_plan.amqp_url(),
            management_url,
            user: rabbit_plan.user.clone(),
            password: rabbit_plan.password.clone(),
            process: Some(rabbit),
            epmd: Some(epmd),
            node: Some(runtime::state::NativeNode {
                sbin: sbin.clone(),
                dir: rabbit_plan.dir.clone(),
                name: rabbit_plan.node.clone(),
                amqp_port: rabbit_plan.amqp_port,
                management_port: rabbit_plan.management_port,
                dist_port: rabbit_plan.dist_port,
                epmd_port: rabbit_plan.epmd_port,
            }),
        },
        postgres: Postgres {
            url: pg_url,
            process: Some(pg),
        },
        aws: Aws {
            process: Some(localstack_process),
            outputs: applied.outputs,
            queue_timeouts: applied.queue_timeouts,
            ..aws
        },
        snowflake: Snowflake {
            process: Some(fakesnow_process),
            ..snowflake_state
        },
        containers: Vec::new(),
        docker_host: None,
    };
    state.save(&options.root)?;
    phases.mark("state written");
    let phases = phases.0.lock().expect("lock").clone();
    Ok(UpOutcome::Started {
        state,
        phases,
        elapsed: t0.elapsed(),
    })
}

/// Where stack ports come from: below Linux's ephemeral range (32768-60999), which every
/// outgoing connection on the machine draws its local port from. A port chosen there is free
/// when chosen and may be some client's a moment later, before the service binds it (seen with
/// several stacks starting at once: RabbitMQ's management listener failed with eaddrinuse).
const PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A port for `service` of stack `name` that stays the same from one `up` to the next, spread
/// over [`PORTS`] by a hash of both names.
pub(crate) fn preferred_port(name: &StackName, service: &str) -> u16 {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(format!("{name}/{service}").as_bytes());
    PORTS.start + u16::from_be_bytes([digest[0], digest[1]]) % (PORTS.end - PORTS.start)
}

/// A listener on `service`'s preferred port, or else on the next free one in [`PORTS`] after
/// it; the caller holds it until the service is spawned, so no two services of one `up` get
/// the same port.
pub(crate) fn bind_free_port(
    name: &StackName,
    service: &str,
) -> std::io::Result<std::net::TcpListener> {
    let first = preferred_port(name, service);
    let span = PORTS.end - PORTS.start;
    let mut last = None;
    for i in 0..span {
        let port = PORTS.start + (first - PORTS.start + i) % span;
        match std::net::TcpListener::bind(("127.0.0.1", port)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::from(std::io::ErrorKind::AddrInUse)))
}

#[cfg(test)]
mod port_tests {
    use super::preferred_port;

    #[test]
    fn a_stack_keeps_its_ports_and_services_get_different_ones() {
        let name = "default".parse().unwrap();
        assert_eq!(
            preferred_port(&name, "fakesnow"),
            preferred_port(&name, "fakesnow")
        );
        let ports: std::collections::HashSet<u16> =
            ["rabbitmq", "postgres", "localstack", "fakesnow"]
                .iter()
                .map(|s| preferred_port(&name, s))
                .collect();
        assert_eq!(ports.len(), 4);
        assert!(ports.iter().all(|p| super::PORTS.contains(p)));
        assert!(super::PORTS.end <= 32_768, "below the ephemeral range");
    }

    #[test]
    fn a_taken_preferred_port_gives_the_next_free_one_below_the_ephemeral_range() {
        let name = "porttest".parse().unwrap();
        let held = super::bind_free_port(&name, "svc").unwrap();
        let next = super::bind_free_port(&name, "svc").unwrap();
        let (a, b) = (
            held.local_addr().unwrap().port(),
            next.local_addr().unwrap().port(),
        );
        assert_ne!(a, b);
        assert!(super::PORTS.contains(&a) && super::PORTS.contains(&b));
    }
}
