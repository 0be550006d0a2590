//! The native provider: each service a child process on 127.0.0.1 with free ports, data and logs
//! under `target/sluice/<stack>/`.

pub(crate) mod fakesnow;
pub(crate) mod localstack;
pub(crate) mod postgres;
pub(crate) mod rabbitmq;
pub(crate) mod up;

use std::path::PathBuf;

/// Where the system services' programs are; `None` finds them the usual way.
#[derive(Clone, Debug, Default)]
pub struct Binaries {
    /// The `sbin/` of the RabbitMQ server package (with `rabbitmq-server`).
    pub rabbitmq_sbin: Option<PathBuf>,
    /// PostgreSQL's server `bin/` (with `initdb` and `postgres`).
    pub postgres_bindir: Option<PathBuf>,
}

/// Ports to use instead of free ones.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ports {
    pub rabbitmq: Option<u16>,
    pub postgres: Option<u16>,
    pub localstack: Option<u16>,
    pub fakesnow: Option<u16>,
}

/// A random credential for a stack's services.
pub(crate) fn secret() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..24)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}
