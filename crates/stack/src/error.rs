use std::path::PathBuf;

/// What went wrong provisioning, probing or stopping a stack. Each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error(transparent)]
    InvalidName(#[from] runtime::InvalidStackName),
    #[error("{what} not found ({looked}); install it with `apt-get install {package}`")]
    MissingBinary {
        what: &'static str,
        looked: String,
        package: &'static str,
    },
    #[error(
        "port {port} requested for {service} is already in use; choose another or leave it out to get a free one"
    )]
    PortInUse { service: &'static str, port: u16 },
    #[error(transparent)]
    State(#[from] runtime::StateError),
    #[error("{service} did not become ready within {seconds}s: {reason}\nlast lines of {}:\n{tail}", log.display())]
    NotReady {
        service: &'static str,
        seconds: u64,
        reason: String,
        log: PathBuf,
        tail: String,
    },
    #[error("{service} exited during start-up ({status})\nlast lines of {}:\n{tail}", log.display())]
    Exited {
        service: &'static str,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("applying {what}: {reason}")]
    Apply { what: String, reason: String },
    #[error("environment variable {name} is required for the external provider: {what}")]
    MissingEnv {
        name: &'static str,
        what: &'static str,
    },
    #[error("the {provider} provider is not available here: {reason}")]
    ProviderUnavailable {
        provider: &'static str,
        reason: String,
    },
    #[error("`{command}` failed: {reason}")]
    Docker { command: String, reason: String },
    #[error(
        "image {image} for {service} is not built (its inputs changed, or it never was); build it with `cargo xtask images`"
    )]
    ImageMissing {
        service: &'static str,
        image: String,
    },
    #[error("interrupted; stopped everything this run had started")]
    Interrupted,
    #[error(transparent)]
    Tools(#[from] pytools::ToolError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = StackError> = std::result::Result<T, E>;

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StackError {
    let context = context.into();
    move |source| StackError::Io { context, source }
}

pub(crate) fn apply_err(what: impl Into<String>) -> impl FnOnce(String) -> StackError {
    let what = what.into();
    move |reason| StackError::Apply { what, reason }
}
