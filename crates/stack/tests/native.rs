//! The native provider for real: up -> every service answers a real request -> down -> nothing left.

mod common;

use common::{amqp_round_trip, aws_round_trips, snowflake_and_postgres};

use std::path::PathBuf;

use stack::{Binaries, DownOptions, Ports, ProviderKind, StackName, State, UpOptions, UpOutcome};

/// Takes the stack down when dropped, so a failed assertion leaves no process behind.
struct DownOnDrop(PathBuf, &'static str);

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        let name: StackName = self.1.parse().unwrap();
        if stack::state_path(&self.0, &name).exists() {
            let _ = stack::down(&self.0, &name, DownOptions::default());
        }
    }
}

fn options(root: PathBuf, name: &str) -> UpOptions {
    UpOptions {
        root,
        name: name.parse().unwrap(),
        provider: ProviderKind::Native,
        ports: Ports::default(),
        binaries: Binaries::default(),
        stop_on_ctrl_c: false,
        images: Default::default(),
        // Neither profile's values: the queues must have what was asked, not a default.
        queue_timeouts: stack::QueueTimeouts {
            ingest_visibility_s: 7,
            notify_visibility_s: 9,
            max_receive_count: 3,
        },
    }
}

/// The external provider, pointed through its environment variables at this stack's services:
/// it starts nothing, applies `infra/` (definitions over the management API, a second
/// CloudFormation stack, idempotent DDL) and writes a state without processes.
async fn external_provider_applies_infra_to_running_services(
    root: &std::path::Path,
    native: &State,
) {
    let vars = [
        ("SLUICE_AMQP_URL", native.rabbitmq.amqp_url.clone()),
        (
            "SLUICE_RABBITMQ_MANAGEMENT_URL",
            native.rabbitmq.management_url.clone(),
        ),
        ("SLUICE_RABBITMQ_USER", native.rabbitmq.user.clone()),
        ("SLUICE_RABBITMQ_PASSWORD", native.rabbitmq.password.clone()),
        ("SLUICE_POSTGRES_URL", native.postgres.url.clone()),
        ("AWS_REGION", native.aws.region.clone()),
        ("AWS_ENDPOINT_URL", native.aws.endpoint_url.clone().unwrap()),
        ("SNOWFLAKE_URL", native.snowflake.base_url.clone().unwrap()),
        ("SNOWFLAKE_ACCOUNT", "fakesnow".into()),
        ("SNOWFLAKE_USER", "sluice".into()),
        ("SNOWFLAKE_PASSWORD", "sluice".into()),
    ];
    for (k, v) in &vars {
        // SAFETY: this binary has one test and no other thread reads the environment now.
        unsafe { std::env::set_var(k, v) };
    }
    let mut o = options(root.to_owned(), "ext");
    o.provider = ProviderKind::External;
    let UpOutcome::Started { state, .. } = stack::up(o).await.unwrap_or_else(|e| panic!("{e}"))
    else {
        panic!("new")
    };
    assert!(
        state.processes().is_empty(),
        "the external provider starts nothing"
    );
    assert_eq!(
        state.aws.outputs["BucketName"], "sluice-ext-raw",
        "its own CloudFormation stack"
    );
    let name: StackName = "ext".parse().unwrap();
    let report = stack::status(root, &name).await.unwrap();
    assert!(report.services.iter().all(|s| s.healthy), "{report:?}");
    assert!(
        stack::down(root, &name, DownOptions::default())
            .unwrap()
            .stopped
            .is_empty()
    );
    for (k, _) in &vars {
        // SAFETY: as above.
        unsafe { std::env::remove_var(k) };
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_every_service_answers_then_down_leaves_nothing() {
    let root = std::env::temp_dir().join(format!("sluice-stack-test-{}", std::process::id()));
    let name: StackName = "it".parse().unwrap();
    let _guard = DownOnDrop(root.clone(), "it");
    let _external_guard = DownOnDrop(root.clone(), "ext");
    let outcome = stack::up(options(root.clone(), "it"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let UpOutcome::Started {
        state,
        phases,
        elapsed,
    } = outcome
    else {
        panic!("a new stack")
    };
    eprintln!("up in {elapsed:.1?}: {phases:?}");

    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(stack::state_path(&root, &name))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the state holds credentials");
    assert_eq!(State::load(&root, &name).unwrap(), state);
    assert_eq!(
        state.aws.queue_timeouts,
        options(root.clone(), "it").queue_timeouts,
        "the state records the timeouts the stack was created with"
    );

    amqp_round_trip(&state.rabbitmq.amqp_url).await;
    aws_round_trips(&state).await;
    snowflake_and_postgres(&state).await;

    let report = stack::status(&root, &name).await.unwrap();
    let names: Vec<&str> = report.services.iter().map(|s| s.name).collect();
    assert_eq!(names, ["rabbitmq", "postgres", "localstack", "fakesnow"]);
    assert!(report.services.iter().all(|s| s.healthy), "{report:?}");

    assert!(
        matches!(
            stack::up(options(root.clone(), "it")).await.unwrap(),
            UpOutcome::AlreadyRunning(_)
        ),
        "idempotent"
    );

    external_provider_applies_infra_to_running_services(&root, &state).await;

    let processes: Vec<stack::ProcessInfo> = state
        .processes()
        .into_iter()
        .map(|(_, p)| p.clone())
        .collect();
    assert_eq!(processes.len(), 5, "four services and epmd");
    for (name, p) in state.processes() {
        let listening = listening_sockets(p.pid);
        assert!(
            !listening.is_empty(),
            "{name} (pid {}) listens nowhere; the check reads the wrong sockets",
            p.pid
        );
        for (addr, port) in listening {
            // epmd adds ::1 to the address it is given; loopback either way.
            assert!(
                addr == "0100007F" || addr == "00000000000000000000000001000000",
                "{name} (pid {}) listens on {addr}:{port} (hex, as /proc/net/tcp shows it), not \
                 on loopback",
                p.pid
            );
        }
    }
    let ports: Vec<u16> = [
        &state.rabbitmq.amqp_url,
        &state.postgres.url,
        state.aws.endpoint_url.as_ref().unwrap(),
        state.snowflake.base_url.as_ref().unwrap(),
    ]
    .iter()
    .map(|u| {
        u.rsplit(':')
            .next()
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    })
    .collect();
    // A broker restart interrupted while the new node boots (an `e2e` stopped during a
    // broker-restart fault's heal): the state names the new node from its spawn, so `down`
    // stops it.
    let old_node = state.rabbitmq.process.clone().unwrap();
    tokio::task::spawn_blocking({
        let (root, name) = (root.clone(), name.clone());
        move || stack::kill_broker(&root, &name)
    })
    .await
    .unwrap()
    .unwrap();
    assert!(!old_node.is_alive());
    let heal = stack::start_broker_again(&root, &name);
    // Dropped while the node boots (it takes seconds): the interruption.
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(500), heal)
            .await
            .is_err(),
        "the node answered within half a second; nothing was interrupted"
    );
    let new_node = State::load(&root, &name).unwrap().rabbitmq.process.unwrap();
    assert_ne!(new_node, old_node, "the state names the new node");
    assert!(new_node.is_alive());

    let report = stack::down(&root, &name, DownOptions::default()).unwrap();
    eprintln!("down in {:.1?}", report.elapsed);
    for p in processes.iter().chain([&new_node]) {
        assert!(!p.is_alive(), "pid {} still running after down", p.pid);
    }
    for port in ports {
        assert!(
            stack::port_is_free(port),
            "port {port} still taken after down"
        );
    }
    assert!(!stack::stack_dir(&root, &name).exists(), "data removed");
    assert!(matches!(
        stack::status(&root, &name).await,
        Err(stack::StackError::State(stack::StateError::NotFound { .. }))
    ));
    std::fs::remove_dir_all(&root).ok();
}

/// `pid` and every process below it.
fn process_tree(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let child: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).ok()?;
            // After the command's closing parenthesis: state, then the parent's pid.
            let ppid = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some((child, ppid))
        })
        .collect();
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    tree
}

/// The local addresses (hex as /proc/net/tcp{,6} print them) and ports of every TCP socket
/// `pid` or a process below it listens on.
fn listening_sockets(pid: u32) -> Vec<(String, u16)> {
    let mut inodes: Vec<String> = Vec::new();
    for p in process_tree(pid) {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{p}/fd")) else {
            continue;
        };
        inodes.extend(
            fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                .filter_map(|l| {
                    let l = l.to_string_lossy().into_owned();
                    Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
                }),
        );
    }
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        for line in std::fs::read_to_string(table).unwrap().lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // f[1] local address:port, f[3] state (0A = LISTEN), f[9] inode.
            if f[3] == "0A" && inodes.contains(&f[9].to_string()) {
                let (addr, port) = f[1].split_once(':').unwrap();
                out.push((addr.to_string(), u16::from_str_radix(port, 16).unwrap()));
            }
        }
    }
    out
}

/// Scratch stacks are killed, not shut down: every process is gone and the folder with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_scratch_stack_leaves_no_process_and_no_folder() {
    let stack = stack::scratch::ScratchStack::shared().await;
    let processes: Vec<_> = stack
        .state
        .processes()
        .into_iter()
        .map(|(_, p)| p.clone())
        .collect();
    assert!(processes.len() >= 4, "{processes:?}");
    let root = stack.root().to_owned();
    drop(stack);
    for p in &processes {
        assert!(!p.is_alive(), "pid {} still running after the drop", p.pid);
    }
    assert!(!root.exists(), "{} removed", root.display());
}
