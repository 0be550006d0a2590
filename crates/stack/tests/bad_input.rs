//! Bad input is a clear error and leaves nothing half-started.

use std::path::{Path, PathBuf};

use stack::{Binaries, DownOptions, Ports, ProviderKind, StackError, StackName, UpOptions};

fn root(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-bad-input-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn options(root: &Path) -> UpOptions {
    UpOptions {
        root: root.to_owned(),
        name: "bad".parse().unwrap(),
        provider: ProviderKind::Native,
        ports: Ports::default(),
        binaries: Binaries::default(),
        stop_on_ctrl_c: false,
        images: Default::default(),
        queue_timeouts: stack::QueueTimeouts::TEST,
    }
}

fn nothing_started(root: &Path) {
    let name: StackName = "bad".parse().unwrap();
    assert!(!stack::state_path(root, &name).exists(), "no state written");
    assert!(
        !stack::stack_dir(root, &name).exists(),
        "no stack folder created"
    );
}

#[tokio::test]
async fn a_requested_port_in_use_is_refused_before_anything_starts() {
    let root = root("port");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut o = options(&root);
    o.ports.postgres = Some(port);
    let err = stack::up(o).await.unwrap_err();
    assert!(
        matches!(err, StackError::PortInUse { service: "postgres", port: p } if p == port),
        "{err}"
    );
    assert!(err.to_string().contains(&port.to_string()));
    nothing_started(&root);
}

#[tokio::test]
async fn a_missing_system_binary_names_the_package() {
    let root = root("binary");
    let mut o = options(&root);
    o.binaries.rabbitmq_sbin = Some("/nonexistent/sbin".into());
    let err = stack::up(o).await.unwrap_err().to_string();
    assert!(err.contains("apt-get install rabbitmq-server"), "{err}");
    let mut o = options(&root);
    o.binaries.postgres_bindir = Some("/nonexistent/bin".into());
    let err = stack::up(o).await.unwrap_err().to_string();
    assert!(err.contains("apt-get install postgresql"), "{err}");
    nothing_started(&root);
}

#[tokio::test]
async fn a_corrupt_state_file_is_reported_and_left_alone() {
    let root = root("corrupt");
    let name: StackName = "bad".parse().unwrap();
    let path = stack::state_path(&root, &name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "{ not json").unwrap();
    for err in [
        stack::up(options(&root)).await.unwrap_err(),
        stack::status(&root, &name).await.unwrap_err(),
        stack::down(&root, &name, DownOptions::default()).unwrap_err(),
    ] {
        assert!(
            matches!(err, StackError::State(stack::StateError::Corrupt { .. })),
            "{err}"
        );
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "{ not json",
        "never overwritten"
    );
}

#[tokio::test]
async fn no_stack_says_how_to_start_one() {
    let root = root("none");
    let name: StackName = "bad".parse().unwrap();
    let err = stack::status(&root, &name).await.unwrap_err().to_string();
    assert!(err.contains("cargo xtask up --stack bad"), "{err}");
    nothing_started(&root);
}

#[test]
fn stack_names_with_path_characters_are_refused() {
    for bad in ["../x", "a/b", "x y", "UPPER"] {
        let err = bad.parse::<StackName>().unwrap_err().to_string();
        assert!(err.contains(bad), "{err}");
    }
}
