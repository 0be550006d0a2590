//! Starting a container stack through testcontainers.

use std::time::{Duration, Instant};

use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerRequest, GenericImage, ImageExt};

use super::*;
use crate::error::{Result, StackError, io_err};
use crate::up::{Phases, UpOptions, UpOutcome};
use crate::{apply, native, readiness, stack_dir};
use runtime::state::{Aws, ContainerRecord, Postgres, ProviderKind, RabbitMq, Snowflake, State};

/// Creates and starts one container; returns its id. Readiness is probed afterwards, at the
/// protocol level, as for native services.
async fn start(spec: &ContainerSpec) -> Result<String> {
    let image = GenericImage::new(spec.repository.clone(), spec.tag.clone())
        .with_wait_for(WaitFor::Nothing);
    let mut request: ContainerRequest<GenericImage> = image.into();
    for (inside, host) in &spec.ports {
        request = request.with_mapped_port(*host, inside.tcp());
    }
    for (k, v) in &spec.env {
        request = request.with_env_var(k, v);
    }
    for (k, v) in &spec.labels {
        request = request.with_label(k, v);
    }
    for (path, content) in &spec.files {
        request = request.with_copy_to(path.as_str(), content.clone());
    }
    if !spec.cmd.is_empty() {
        request = request.with_cmd(spec.cmd.clone());
    }
    // Published on loopback only, whatever the engine's default. No DNS: the services resolve
    // nothing outside their container, and where the bridge has no route out (an engine without
    // iptables), lookups of their own names time out (LocalStack's start took 10 s longer).
    request = request.with_host_config_modifier(|host| {
        host.dns = Some(vec!["127.0.0.1".into()]);
        for bindings in host.port_bindings.iter_mut().flat_map(|b| b.values_mut()) {
            for binding in bindings.iter_mut().flatten() {
                binding.host_ip = Some("127.0.0.1".into());
            }
        }
    });
    let container = request
        .with_startup_timeout(Duration::from_secs(120))
        .start()
        .await
        .map_err(|e| StackError::Docker {
            command: format!(
                "starting {}:{} for {}",
                spec.repository, spec.tag, spec.service
            ),
            reason: e.to_string(),
        })?;
    let id = container.id().to_owned();
    // The stack outlives this process: `down` (or the next `up` after a crash) removes the
    // container by its labels and id. Dropping it here would remove it now.
    std::mem::forget(container);
    Ok(id)
}

fn free_port(name: &StackName, service: &str) -> Result<u16> {
    let listener =
        crate::ports::bind_free_port(name, service).map_err(|_| StackError::PortInUse {
            service: "containers",
            port: 0,
        })?;
    Ok(listener
        .local_addr()
        .map_err(io_err("local address"))?
        .port())
}

pub(crate) async fn up(options: UpOptions) -> Result<UpOutcome> {
    let engine = Engine::require()?;
    if std::env::var("DOCKER_HOST").ok().as_deref() != Some(engine.host.as_str())
        && engine.origin != crate::engine::Origin::System
    {
        // testcontainers reads only DOCKER_HOST, and would go to the system's socket.
        return Err(StackError::ProviderUnavailable {
            provider: "containers",
            reason: format!("set DOCKER_HOST={} (Sluice's own engine)", engine.host),
        });
    }
    let checkout = checkout_label(&options.root);
    let leftovers = labelled(&engine, &options.name, &checkout)?;
    if !leftovers.is_empty() {
        tracing::warn!(stack = %options.name, count = leftovers.len(), "removing containers an earlier `up` left behind");
        remove(&engine, &leftovers)?;
    }
    let work = up_inner(&options, &engine, &checkout);
    let result = if options.stop_on_ctrl_c {
        tokio::select! {
            r = work => r,
            _ = tokio::signal::ctrl_c() => Err(StackError::Interrupted),
        }
    } else {
        work.await
    };
    if result.is_err() {
        // Whatever this run created, found by its labels (also those whose start failed half way).
        if let Ok(ids) = labelled(&engine, &options.name, &checkout) {
            let _ = remove(&engine, &ids);
        }
        let dir = stack_dir(&options.root, &options.name);
        let _ = std::fs::remove_file(dir.join("state.json"));
        // Kept when it holds a failed service's log, for whoever reads the error.
        let _ = std::fs::remove_dir(&dir);
    }
    result
}

async fn up_inner(options: &UpOptions, engine: &Engine, checkout: &str) -> Result<UpOutcome> {
    let t0 = Instant::now();
    let phases = Phases::starting_now();
    let mark = |name: &'static str| phases.mark(name);
    let infra = crate::infra_dir();
    let name = &options.name;
    let dir = stack_dir(&options.root, name);
    std::fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
    let planned = images::plan(&infra)?;
    let ports = HostPorts {
        rabbitmq_amqp: options
            .ports
            .rabbitmq
            .map_or_else(|| free_port(name, "rabbitmq"), Ok)?,
        rabbitmq_management: free_port(name, "rabbitmq management")?,
        postgres: options
            .ports
            .postgres
            .map_or_else(|| free_port(name, "postgres"), Ok)?,
        localstack: options
            .ports
            .localstack
            .map_or_else(|| free_port(name, "localstack"), Ok)?,
        fakesnow: options
            .ports
            .fakesnow
            .map_or_else(|| free_port(name, "fakesnow"), Ok)?,
    };
    let (user, rabbit_pw, pg_pw) = ("sluice", native::secret(), native::secret());
    let plan = Plan {
        stack: name,
        checkout: checkout.to_owned(),
        images: &planned,
        choice: options.images,
        ports,
        rabbitmq_user: user,
        rabbitmq_password: &rabbit_pw,
        rabbitmq_definitions: native::rabbitmq::definitions(&infra, user, &rabbit_pw)?,
        postgres_user: user,
        postgres_password: &pg_pw,
    };
    let specs = specs(&plan);
    missing_images(engine, &specs)?;

    let mut records = Vec::new();
    for spec in &specs {
        let id = start(spec).await?;
        records.push(ContainerRecord {
            service: spec.service.into(),
            id,
            image: format!("{}:{}", spec.repository, spec.tag),
        });
    }
    mark("containers started");
    let id_of = |service: &str| {
        records
            .iter()
            .find(|r| r.service == service)
            .map(|r| r.id.clone())
            .expect("started above")
    };

    let http = readiness::http_client();
    let management_url = format!("http://127.0.0.1:{}", ports.rabbitmq_management);
    let amqp_url = format!(
        "amqp://{user}:{rabbit_pw}@127.0.0.1:{}/%2f",
        ports.rabbitmq_amqp
    );
    let pg_url = format!(
        "postgres://{user}:{pg_pw}@127.0.0.1:{}/postgres",
        ports.postgres
    );
    let endpoint = format!("http://127.0.0.1:{}", ports.localstack);
    let fakesnow_url = format!("http://127.0.0.1:{}", ports.fakesnow);
    let mut aws = Aws {
        endpoint_url: Some(endpoint.clone()),
        region: "us-east-1".into(),
        process: None,
        outputs: Default::default(),
        queue_timeouts: options.queue_timeouts,
    };
    let rabbit_ready = watch(engine, &dir, "rabbitmq", id_of("rabbitmq"), async {
        readiness::wait("rabbitmq", None, Duration::from_secs(90), || {
            readiness::rabbitmq(&http, &management_url, user, &rabbit_pw)
        })
        .await?;
        readiness::wait("rabbitmq", None, Duration::from_secs(60), || {
            readiness::amqp(&amqp_url)
        })
        .await?;
        mark("rabbitmq ready, definitions loaded");
        Ok(())
    });
    let pg_ready = watch(engine, &dir, "postgres", id_of("postgres"), async {
        readiness::wait("postgres", None, Duration::from_secs(60), || {
            readiness::postgres(&pg_url)
        })
        .await?;
        mark("postgres ready");
        apply::postgres(&infra, &pg_url).await?;
        mark("postgres schema applied");
        Ok(())
    });
    let localstack_ready = watch(engine, &dir, "localstack", id_of("localstack"), async {
        readiness::wait("localstack", None, Duration::from_secs(90), || {
            readiness::localstack(&http, &endpoint)
        })
        .await?;
        mark("localstack ready");
        let applied = apply::cloudformation(&infra, name, &aws, &aws.queue_timeouts).await?;
        mark("cloudformation applied");
        Ok(applied)
    });
    let fakesnow_ready = watch(engine, &dir, "fakesnow", id_of("fakesnow"), async {
        let config = snowflake::Config::fakesnow(&fakesnow_url).map_err(|e| StackError::Apply {
            what: "snowflake".into(),
            reason: e.to_string(),
        })?;
        readiness::wait("fakesnow", None, Duration::from_secs(60), || {
            readiness::snowflake(config.clone())
        })
        .await?;
        mark("fakesnow ready");
        apply::snowflake(&infra, config, false).await?;
        mark("snowflake DDL applied");
        Ok(())
    });
    let (r, p, l, f) = tokio::join!(rabbit_ready, pg_ready, localstack_ready, fakesnow_ready);
    r?;
    p?;
    let applied = l?;
    aws.outputs = applied.outputs;
    aws.queue_timeouts = applied.queue_timeouts;
    f?;

    let state = State {
        stack: name.clone(),
        provider: ProviderKind::Containers,
        created_at: chrono::Utc::now(),
        dir: dir.clone(),
        rabbitmq: RabbitMq {
            amqp_url,
            management_url,
            user: user.into(),
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
            base_url: Some(fakesnow_url),
            account: "fakesnow".into(),
            user: user.into(),
            database: "SLUICE".into(),
            password: Some("sluice".into()),
            process: None,
        },
        containers: records,
        docker_host: Some(engine.host.clone()),
    };
    state.save(&options.root)?;
    mark("state written");
    Ok(UpOutcome::Started {
        state,
        phases: phases.take(),
        elapsed: t0.elapsed(),
    })
}

/// Runs a service's readiness and apply steps, failing early when its container stops; a
/// failure carries the container's last output, also saved to `<stack>/<service>.log`.
async fn watch<T>(
    engine: &Engine,
    dir: &Path,
    service: &'static str,
    id: String,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    let exited = async {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let (engine, id) = (engine.clone(), id.clone());
            let alive = tokio::task::spawn_blocking(move || running(&engine, &id))
                .await
                .unwrap_or(true);
            if !alive {
                return;
            }
        }
    };
    let result = tokio::select! {
        r = work => r,
        () = exited => Err(StackError::Exited {
            service,
            status: format!("container {} stopped", &id[..12.min(id.len())]),
            log: Default::default(),
            tail: String::new(),
        }),
    };
    result.map_err(|e| {
        let log = dir.join(format!("{service}.log"));
        let tail = logs_tail(engine, &id, 200);
        let _ = std::fs::write(&log, &tail);
        let tail: String = {
            let lines: Vec<&str> = tail.lines().collect();
            lines[lines.len().saturating_sub(25)..].join("\n")
        };
        match e {
            StackError::NotReady {
                service,
                seconds,
                reason,
                ..
            } => StackError::NotReady {
                service,
                seconds,
                reason,
                log,
                tail,
            },
            StackError::Exited {
                service, status, ..
            } => StackError::Exited {
                service,
                status,
                log,
                tail,
            },
            other => other,
        }
    })
}
