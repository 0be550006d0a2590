//! What every pipeline component (relay, batcher, pipe, backfill) shares, and nothing more:
//!
//! - [`args`]: the `--stack`, AWS and `--metrics-file` flags;
//! - [`state`]: a stack's `state.json` (endpoints, credentials, CloudFormation outputs), as
//!   `cargo xtask up` writes it;
//! - [`metrics_file`]: counters written as JSON every second and on exit;
//! - [`aws`]: the SDK configuration for LocalStack or real AWS;
//! - [`latency`]: per-event hop latencies as HDR histograms, carried in the metrics file;
//! - logging ([`init_tracing`]), shutdown on SIGTERM/Ctrl-C ([`shutdown_signal`]) and
//!   [`redact_url`] for printing connection strings.
//!
//! Provisioning (starting services, applying `infra/`) lives in `stack`, which production
//! binaries never link.

pub mod args;
pub mod aws;
pub mod latency;
pub mod metrics_file;
mod name;
pub mod state;

pub use metrics_file::{MetricsFile, write_json};
pub use name::{InvalidStackName, StackName};
pub use state::{QueueTimeouts, State, StateError};

/// Structured logs on stderr; `RUST_LOG` overrides the level (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C: shutting down"),
    }
}

/// A URL without its password, for display.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_hidden_and_the_rest_is_kept() {
        assert_eq!(
            redact_url("amqp://sluice:s3cret@127.0.0.1:5672/%2f"),
            "amqp://sluice:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(redact_url("http://127.0.0.1:4566"), "http://127.0.0.1:4566");
    }
}
