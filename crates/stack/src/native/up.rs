//! The native provider's `up`: checks its input, starts every service as a child process
//! (RabbitMQ first, the slowest), applies `infra/` and writes the state; a failure or Ctrl-C
//! stops exactly what it started.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Result, StackError, io_err};
use crate::native::{self, fakesnow, localstack, postgres, rabbitmq};
use crate::ports::bind_free_port;
use crate::up::{Phases, UpOptions, UpOutcome};
use crate::{apply, readiness, stack_dir, stop_processes};
use runtime::state::ProcessInfo;
use runtime::state::{Aws, Postgres, ProviderKind, RabbitMq, Snowflake, State};

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
        stop_processes(&refs, crate::Shutdown::Graceful);
    }
}

pub(crate) async fn up(options: UpOptions) -> Result<UpOutcome> {
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
    let phases = Phases::starting_now();
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
        let p = localstack::start(&venv, &infra, &dir, localstack_port)?;
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
    let phases = phases.take();
    Ok(UpOutcome::Started {
        state,
        phases,
        elapsed: t0.elapsed(),
    })
}
