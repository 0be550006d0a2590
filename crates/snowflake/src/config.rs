use std::fmt;
use std::path::Path;
use std::time::Duration;

use url::Url;

use crate::error::{Error, Result};

/// A secret string: kept out of `Debug`, `Display`, errors and logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Clone, Debug)]
pub enum Auth {
    Password(Secret),
    /// Key-pair authentication: an unencrypted PKCS#8 (or PKCS#1) RSA private key in PEM form.
    KeyPair {
        private_key_pem: Secret,
    },
}

/// Bounded retries with exponential backoff, for transient failures only.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub resend: Resend,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(4),
            resend: Resend::Deduplicated,
        }
    }
}

/// Whether a request may be sent again after it could have reached the server (a timeout, or
/// the connection lost while waiting for the answer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resend {
    /// The server recognises a repeated request id and runs the statement once (Snowflake).
    Deduplicated,
    /// The server runs every request it receives (fakesnow): only a request that surely never
    /// arrived (no connection) is sent again; otherwise the caller gets the error. Resending
    /// there ran an `INSERT` twice when a fault cut the answer off.
    OnlyUnsent,
}

#[derive(Clone, Debug)]
pub struct Config {
    /// Account identifier, e.g. `xy12345.eu-west-1` or `myorg-myaccount`.
    pub account: String,
    pub user: String,
    pub auth: Auth,
    pub role: Option<String>,
    pub warehouse: Option<String>,
    pub database: Option<String>,
    pub schema: Option<String>,
    /// `http://127.0.0.1:PORT` for fakesnow; default `https://<account>.snowflakecomputing.com`.
    pub base_url: Option<Url>,
    /// Connect timeout per attempt.
    pub connect_timeout: Duration,
    /// Whole-request timeout per attempt (long queries are polled, so this bounds one call).
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
    /// Extra session parameters sent at login (e.g. `FAKESNOW_DB_PATH`).
    pub session_parameters: serde_json::Map<String, serde_json::Value>,
}

impl Config {
    /// A config with password authentication and defaults for everything else.
    pub fn new(
        account: impl Into<String>,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        Self {
            account: account.into(),
            user: user.into(),
            auth: Auth::Password(Secret::new(password)),
            role: None,
            warehouse: None,
            database: None,
            schema: None,
            base_url: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(300),
            retry: RetryPolicy::default(),
            session_parameters: serde_json::Map::new(),
        }
    }

    /// A config for a fakesnow server at `base_url` (any user and password are accepted).
    pub fn fakesnow(base_url: &str) -> Result<Self> {
        let mut config = Self::new("fakesnow", "sluice", "sluice");
        config.retry.resend = Resend::OnlyUnsent;
        config.base_url = Some(
            Url::parse(base_url)
                .map_err(|e| Error::Config(format!("base URL {base_url:?}: {e}")))?,
        );
        Ok(config)
    }

    /// The warehouse a stack's state file names: every component and command that reads a
    /// stack's state builds its Snowflake config here.
    pub fn from_state(warehouse: &runtime::state::Snowflake) -> Result<Self> {
        Self::for_stack(
            warehouse.base_url.as_deref(),
            &warehouse.user,
            &warehouse.database,
        )
    }

    /// A stack's warehouse: fakesnow at `base_url` as `user`, or, without a base URL, a real
    /// account from the environment ([`Config::from_env`]); either way in `database`.
    pub fn for_stack(base_url: Option<&str>, user: &str, database: &str) -> Result<Self> {
        let mut config = match base_url {
            Some(url) => {
                let mut c = Self::fakesnow(url)?;
                c.user = user.to_owned();
                c
            }
            None => Self::from_env()?,
        };
        config.database = Some(database.to_owned());
        Ok(config)
    }

    /// Reads `SNOWFLAKE_ACCOUNT`, `SNOWFLAKE_USER`, `SNOWFLAKE_PASSWORD` or
    /// `SNOWFLAKE_PRIVATE_KEY_PATH`, and optionally `SNOWFLAKE_ROLE`, `SNOWFLAKE_WAREHOUSE`,
    /// `SNOWFLAKE_DATABASE`, `SNOWFLAKE_SCHEMA` and `SNOWFLAKE_URL` (base-URL override).
    pub fn from_env() -> Result<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let required =
            |name: &str| var(name).ok_or_else(|| Error::Config(format!("{name} is not set")));
        let auth = match (var("SNOWFLAKE_PRIVATE_KEY_PATH"), var("SNOWFLAKE_PASSWORD")) {
            (Some(path), _) => {
                let pem =
                    std::fs::read_to_string(Path::new(&path)).map_err(|source| Error::Io {
                        context: format!("reading SNOWFLAKE_PRIVATE_KEY_PATH {path}"),
                        source,
                    })?;
                Auth::KeyPair {
                    private_key_pem: Secret::new(pem),
                }
            }
            (None, Some(password)) => Auth::Password(Secret::new(password)),
            (None, None) => {
                return Err(Error::Config(
                    "set SNOWFLAKE_PASSWORD or SNOWFLAKE_PRIVATE_KEY_PATH".into(),
                ));
            }
        };
        let mut config = Self::new(
            required("SNOWFLAKE_ACCOUNT")?,
            required("SNOWFLAKE_USER")?,
            "",
        );
        config.auth = auth;
        config.role = var("SNOWFLAKE_ROLE");
        config.warehouse = var("SNOWFLAKE_WAREHOUSE");
        config.database = var("SNOWFLAKE_DATABASE");
        config.schema = var("SNOWFLAKE_SCHEMA");
        if let Some(url) = var("SNOWFLAKE_URL") {
            config.base_url = Some(
                Url::parse(&url)
                    .map_err(|e| Error::Config(format!("SNOWFLAKE_URL {url:?}: {e}")))?,
            );
        }
        Ok(config)
    }

    pub fn base_url(&self) -> Result<Url> {
        match &self.base_url {
            Some(url) => Ok(url.clone()),
            None => Url::parse(&format!("https://{}.snowflakecomputing.com", self.account))
                .map_err(|e| {
                    Error::Config(format!(
                        "account {:?} does not make a host name: {e}",
                        self.account
                    ))
                }),
        }
    }
}
