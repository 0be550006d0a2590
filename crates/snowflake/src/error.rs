/// What went wrong talking to Snowflake. Never carries credentials or tokens.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The statement failed in Snowflake (or fakesnow): a compilation or execution error.
    #[error("SQL error {code} (SQLSTATE {sql_state}){}: {message}", query_id.as_ref().map(|q| format!(" in query {q}")).unwrap_or_default())]
    Sql {
        code: String,
        sql_state: String,
        message: String,
        query_id: Option<String>,
    },
    /// Login or session renewal was refused.
    #[error("authentication failed ({code}): {message}")]
    Auth { code: String, message: String },
    /// No connection could be made (wrong URL, server down), after bounded retries.
    #[error("cannot reach Snowflake at {url} after {attempts} attempt(s): {reason}")]
    Connect {
        url: String,
        attempts: u32,
        reason: String,
    },
    /// The server answered with an HTTP error status.
    #[error("HTTP {status} from {url}: {body}")]
    Http {
        status: u16,
        url: String,
        body: String,
    },
    /// The answer did not follow the protocol (unexpected shape, undecodable rowset).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A value could not be converted to the requested type.
    #[error("column {column:?}: {reason}")]
    Value { column: String, reason: String },
    /// The server asked for something this client does not do (yet).
    #[error("not supported: {0}")]
    Unsupported(String),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The Snowflake error code, for SQL and authentication errors.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Sql { code, .. } | Error::Auth { code, .. } => Some(code),
            _ => None,
        }
    }

    pub(crate) fn protocol(what: impl Into<String>) -> Self {
        Error::Protocol(what.into())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
