//! The container provider and the image builds against a real Docker engine.
//!
//! They need an engine and the images: `cargo xtask ci` builds the images (step `images`, which
//! starts Sluice's own engine where none answers) before its `test` step; by hand, run
//! `cargo xtask images` first. Without an engine they fail and say so; they never skip.
#![cfg(feature = "containers")]

mod common;

use std::path::{Path, PathBuf};

use common::{amqp_round_trip, aws_round_trips, snowflake_and_postgres};
use stack::containers::{checkout_label, labelled};
use stack::engine::Engine;
use stack::images::{BuildOptions, Outcome};
use stack::{Binaries, DownOptions, Ports, ProviderKind, StackName, UpOptions, UpOutcome};

fn engine() -> Engine {
    static POINTED: std::sync::Once = std::sync::Once::new();
    // SAFETY: set once, before this binary's tests start any engine client or child process
    // (both tests call this first; `Once` makes the second wait).
    POINTED.call_once(|| unsafe { stack::engine::point_docker_host_at_own_engine() });
    Engine::require().unwrap_or_else(|e| {
        panic!("{e}\n(the container provider's tests need an engine and `cargo xtask images`)")
    })
}

/// Removes the stack's containers and files when dropped, so a failed assertion leaks nothing.
struct Cleanup(PathBuf, StackName);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = stack::down(&self.0, &self.1, DownOptions::default());
        if let Some(engine) = Engine::detect()
            && let Ok(ids) = labelled(&engine, &self.1, &checkout_label(&self.0))
        {
            let _ = stack::containers::remove(&engine, &ids);
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch_root(what: &str) -> PathBuf {
    let root = std::env::temp_dir().join(format!("sluice-{what}-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    root
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_every_service_answers_status_then_down_leaves_no_container() {
    let engine = engine();
    let root = scratch_root("containers-test");
    let name: StackName = "ct".parse().unwrap();
    let _cleanup = Cleanup(root.clone(), name.clone());
    let options = UpOptions {
        root: root.clone(),
        name: name.clone(),
        provider: ProviderKind::Containers,
        ports: Ports::default(),
        binaries: Binaries::default(),
        stop_on_ctrl_c: false,
        images: Default::default(),
        queue_timeouts: stack::QueueTimeouts::TEST,
    };
    let UpOutcome::Started { state, elapsed, .. } = stack::up(options.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    else {
        panic!("a new stack")
    };
    eprintln!("containers up in {elapsed:.1?}");
    assert_eq!(state.provider, ProviderKind::Containers);
    assert!(state.processes().is_empty(), "no host processes");
    let services: Vec<&str> = state
        .containers
        .iter()
        .map(|c| c.service.as_str())
        .collect();
    assert_eq!(services, ["rabbitmq", "postgres", "localstack", "fakesnow"]);
    let labelled_ids = labelled(&engine, &name, &checkout_label(&root)).unwrap();
    assert_eq!(
        labelled_ids.len(),
        4,
        "every container carries the stack's labels"
    );

    // Published on loopback only.
    for c in &state.containers {
        let ports = engine
            .run(&["port", &c.id])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!ports.is_empty(), "{}: publishes a port", c.service);
        for line in ports.lines() {
            assert!(line.contains("-> 127.0.0.1:"), "{}: {line}", c.service);
        }
    }

    amqp_round_trip(&state.rabbitmq.amqp_url).await;
    aws_round_trips(&state).await;
    snowflake_and_postgres(&state).await;
    let (pg, conn) = tokio_postgres::connect(&state.postgres.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let wal: String = pg.query_one("SHOW wal_level", &[]).await.unwrap().get(0);
    assert_eq!(
        wal, "logical",
        "PostgreSQL is ready for logical replication"
    );

    let report = stack::status(&root, &name).await.unwrap();
    assert!(report.services.iter().all(|s| s.healthy), "{report:?}");
    assert!(report.services.iter().all(|s| s.container.is_some()));
    assert!(
        matches!(
            stack::up(options).await.unwrap(),
            UpOutcome::AlreadyRunning(_)
        ),
        "idempotent"
    );

    // A stopped container makes the stack unhealthy, by name.
    engine
        .run(&["stop", "-t", "1", &state.containers[3].id])
        .unwrap();
    let report = stack::status(&root, &name).await.unwrap();
    let fakesnow = report
        .services
        .iter()
        .find(|s| s.name == "fakesnow")
        .unwrap();
    assert!(!fakesnow.healthy, "{fakesnow:?}");

    let down = stack::down(&root, &name, DownOptions::default()).unwrap();
    assert_eq!(down.removed_containers.len(), 4);
    assert!(
        labelled(&engine, &name, &checkout_label(&root))
            .unwrap()
            .is_empty(),
        "no container of the stack is left"
    );
    for c in &state.containers {
        assert!(
            engine.run(&["inspect", &c.id]).is_err(),
            "{} removed",
            c.service
        );
    }
}

fn build(engine: &Engine, infra: &Path, work: &Path) -> Vec<(String, Outcome)> {
    stack::images::build(
        engine,
        &BuildOptions {
            infra: infra.to_owned(),
            work_dir: work.to_owned(),
            ca_bundle: Some("/etc/ssl/certs/ca-certificates.crt".into()),
            progress: &|line| eprintln!("{line}"),
        },
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .into_iter()
    .map(|r| (r.image, r.outcome))
    .collect()
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn unchanged_inputs_reuse_every_image_and_a_changed_pin_rebuilds_only_its_image() {
    let engine = engine();
    let root = scratch_root("images-test");
    let infra = root.join("infra");
    for sub in ["containers", "python"] {
        copy_tree(&stack::infra_dir().join(sub), &infra.join(sub));
    }
    let work = root.join("work");
    let first = build(&engine, &infra, &work);
    assert_eq!(first.len(), 5, "the base and four services");
    let ids = |images: &[(String, Outcome)]| -> Vec<String> {
        images
            .iter()
            .map(|(image, _)| {
                engine
                    .run(&["image", "inspect", "--format", "{{.Id}}", image])
                    .unwrap()
            })
            .collect()
    };
    let before = ids(&first);
    let second = build(&engine, &infra, &work);
    assert!(
        second.iter().all(|(_, o)| *o == Outcome::Reused),
        "unchanged inputs: {second:?}"
    );
    assert_eq!(ids(&second), before, "the very same images");

    // A changed pin (fakesnow's warehouse tools) rebuilds fakesnow's image and nothing else.
    let pins = infra.join("python/warehouse-tools.txt");
    let mut text = std::fs::read_to_string(&pins).unwrap();
    text.push_str("# a changed pin file\n");
    std::fs::write(&pins, text).unwrap();
    // A run killed before its clean-up may have left the changed image: start without it.
    for p in stack::images::plan(&infra).unwrap() {
        if p.service == "fakesnow" {
            let _ = engine.run(&["rmi", &p.image]);
        }
    }
    let third = build(&engine, &infra, &work);
    let rebuilt: Vec<&str> = third
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Built { .. }))
        .map(|(image, _)| image.as_str())
        .collect();
    assert_eq!(rebuilt.len(), 1, "{third:?}");
    assert!(rebuilt[0].starts_with("sluice/fakesnow:"), "{rebuilt:?}");
    assert_ne!(third[4].0, first[4].0, "a new tag for the new inputs");
    assert_eq!(
        ids(&third)[..4],
        before[..4],
        "base, rabbitmq, postgres, localstack untouched"
    );
    let _ = engine.run(&["rmi", &third[4].0]);
    let _ = std::fs::remove_dir_all(&root);
}
