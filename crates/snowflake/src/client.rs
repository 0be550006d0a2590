use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::RwLock;
use url::Url;

use crate::bindings::Binding;
use crate::config::{Auth, Config, Resend, RetryPolicy, Secret};
use crate::error::{Error, Result};
use crate::result::QueryResult;
use crate::wire::{Envelope, LoginData, QueryData, RenewData};

/// Codes of the connector protocol this client acts on.
const SESSION_EXPIRED: &str = "390112";
const QUERY_IN_PROGRESS: &str = "333333";
const QUERY_IN_PROGRESS_ASYNC: &str = "333334";

/// The HTTP side: one connection pool, bounded retries of transient failures.
#[derive(Clone, Debug)]
pub(crate) struct Http {
    client: reqwest::Client,
    retry: RetryPolicy,
}

/// Errors worth another attempt: no answer at all, or an overloaded or restarting server.
enum Attempt<T> {
    Done(T),
    Retry(Error),
    Fail(Error),
}

fn describe(err: &reqwest::Error) -> String {
    // The chain carries the useful part ("Connection refused"); URLs hold no secrets here.
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Whether a failed request may be sent again: always when it never reached the server (no
/// connection), otherwise only to a server that runs a repeated request once.
fn may_resend(resend: Resend, unsent: bool) -> bool {
    unsent || resend == Resend::Deduplicated
}

fn transient_status(status: reqwest::StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 502 | 503 | 504)
}

impl Http {
    fn new(config: &Config) -> Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .user_agent(concat!("sluice-snowflake/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            client,
            retry: config.retry,
        })
    }

    #[cfg(test)]
    pub(crate) fn for_tests() -> Self {
        Self {
            client: reqwest::Client::new(),
            retry: RetryPolicy::default(),
        }
    }

    async fn with_retries<T, F, Fut>(&self, url: &Url, mut attempt: F) -> Result<T>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Attempt<T>>,
    {
        let mut backoff = self.retry.initial_backoff;
        let mut last = None;
        for n in 1..=self.retry.max_attempts.max(1) {
            match attempt(n).await {
                Attempt::Done(v) => return Ok(v),
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry(e) => {
                    tracing::debug!(attempt = n, error = %e, "transient failure");
                    last = Some(e);
                    if n < self.retry.max_attempts {
                        let jitter = rand::rng().random_range(0.8..1.2);
                        tokio::time::sleep(backoff.mul_f64(jitter)).await;
                        backoff = (backoff * 2).min(self.retry.max_backoff);
                    }
                }
            }
        }
        let attempts = self.retry.max_attempts.max(1);
        Err(match last {
            Some(Error::Connect { reason, .. }) => Error::Connect {
                url: redact(url),
                attempts,
                reason,
            },
            Some(other) => other,
            None => Error::protocol("no attempt made"),
        })
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &Url,
    ) -> Attempt<reqwest::Response> {
        match request.send().await {
            Ok(r) if transient_status(r.status()) => {
                let status = r.status().as_u16();
                Attempt::Retry(Error::Http {
                    status,
                    url: redact(url),
                    body: body_excerpt(r).await,
                })
            }
            Ok(r) => Attempt::Done(r),
            Err(e) if e.is_connect() || e.is_timeout() || e.is_request() => {
                let error = Error::Connect {
                    url: redact(url),
                    attempts: 1,
                    reason: describe(&e),
                };
                if may_resend(self.retry.resend, e.is_connect()) {
                    Attempt::Retry(error)
                } else {
                    Attempt::Fail(error)
                }
            }
            Err(e) => Attempt::Fail(Error::Connect {
                url: redact(url),
                attempts: 1,
                reason: describe(&e),
            }),
        }
    }

    /// POSTs JSON and reads the protocol envelope. `token` goes in the Authorization header.
    async fn post<T: DeserializeOwned>(
        &self,
        url: Url,
        token: Option<&Secret>,
        body: &serde_json::Value,
    ) -> Result<Envelope<T>> {
        self.with_retries(&url, |_| {
            let mut request = self
                .client
                .post(url.clone())
                .header("Accept", "application/snowflake")
                .json(body);
            if let Some(token) = token {
                request = request.header(
                    "Authorization",
                    format!("Snowflake Token=\"{}\"", token.expose()),
                );
            }
            self.read_envelope(request, &url)
        })
        .await
    }

    async fn get<T: DeserializeOwned>(&self, url: Url, token: &Secret) -> Result<Envelope<T>> {
        self.with_retries(&url, |_| {
            let request = self
                .client
                .get(url.clone())
                .header("Accept", "application/snowflake")
                .header(
                    "Authorization",
                    format!("Snowflake Token=\"{}\"", token.expose()),
                );
            self.read_envelope(request, &url)
        })
        .await
    }

    async fn read_envelope<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        url: &Url,
    ) -> Attempt<Envelope<T>> {
        let response = match self.send(request, url).await {
            Attempt::Done(r) => r,
            Attempt::Retry(e) => return Attempt::Retry(e),
            Attempt::Fail(e) => return Attempt::Fail(e),
        };
        let status = response.status();
        let bytes = match response.bytes().await {
            Ok(b) => b,
            Err(e) => {
                let error = Error::Connect {
                    url: redact(url),
                    attempts: 1,
                    reason: describe(&e),
                };
                // The server answered: it ran the request.
                return if may_resend(self.retry.resend, false) {
                    Attempt::Retry(error)
                } else {
                    Attempt::Fail(error)
                };
            }
        };
        // Protocol errors come as JSON envelopes, sometimes with 4xx/5xx statuses (fakesnow's
        // 401 for an unknown token, 500 for an unsupported statement): read those first.
        match serde_json::from_slice::<Envelope<T>>(&bytes) {
            Ok(envelope) => Attempt::Done(envelope),
            Err(_) if status.is_server_error() => Attempt::Retry(Error::Http {
                status: status.as_u16(),
                url: redact(url),
                body: excerpt(&bytes),
            }),
            Err(_) if !status.is_success() => Attempt::Fail(Error::Http {
                status: status.as_u16(),
                url: redact(url),
                body: excerpt(&bytes),
            }),
            Err(e) => Attempt::Fail(Error::protocol(format!(
                "unexpected answer from {}: {e}: {}",
                redact(url),
                excerpt(&bytes)
            ))),
        }
    }

    /// One attempt at a storage URL (chunk or presigned upload): only a 2xx answer is `Done`;
    /// other statuses are final, with the start of the body for the error.
    async fn send_to_storage(
        &self,
        request: reqwest::RequestBuilder,
        headers: &[(String, String)],
        url: &Url,
    ) -> Attempt<reqwest::Response> {
        let request = headers.iter().fold(request, |r, (k, v)| r.header(k, v));
        match self.send(request, url).await {
            Attempt::Done(r) if r.status().is_success() => Attempt::Done(r),
            Attempt::Done(r) => {
                let status = r.status().as_u16();
                Attempt::Fail(Error::Http {
                    status,
                    url: redact(url),
                    body: body_excerpt(r).await,
                })
            }
            other => other,
        }
    }

    /// Downloads a result chunk.
    pub(crate) async fn get_bytes(
        &self,
        url: &str,
        headers: &[(String, String)],
    ) -> Result<Vec<u8>> {
        let parsed = Url::parse(url).map_err(|e| Error::protocol(format!("chunk URL: {e}")))?;
        self.with_retries(&parsed, |_| async {
            match self
                .send_to_storage(self.client.get(parsed.clone()), headers, &parsed)
                .await
            {
                Attempt::Done(r) => match r.bytes().await {
                    Ok(b) => Attempt::Done(b.to_vec()),
                    Err(e) => Attempt::Retry(Error::Connect {
                        url: redact(&parsed),
                        attempts: 1,
                        reason: describe(&e),
                    }),
                },
                Attempt::Retry(e) => Attempt::Retry(e),
                Attempt::Fail(e) => Attempt::Fail(e),
            }
        })
        .await
    }

    /// Uploads to a presigned URL.
    pub(crate) async fn put_bytes(
        &self,
        url: &str,
        body: bytes::Bytes,
        headers: &[(String, String)],
    ) -> Result<()> {
        let parsed = Url::parse(url).map_err(|e| Error::protocol(format!("presigned URL: {e}")))?;
        self.with_retries(&parsed, |_| async {
            match self
                .send_to_storage(
                    self.client.put(parsed.clone()).body(body.clone()),
                    headers,
                    &parsed,
                )
                .await
            {
                Attempt::Done(_) => Attempt::Done(()),
                Attempt::Retry(e) => Attempt::Retry(e),
                Attempt::Fail(e) => Attempt::Fail(e),
            }
        })
        .await
    }
}

/// Scheme, host, port and path only: presigned URLs carry credentials in their query.
fn redact(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    let _ = url.set_password(None);
    url.to_string()
}

fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text.chars().take(500).collect();
    if text.chars().count() > 500 {
        out.push('…');
    }
    out
}

async fn body_excerpt(response: reqwest::Response) -> String {
    response
        .bytes()
        .await
        .map(|b| excerpt(&b))
        .unwrap_or_default()
}

#[derive(Debug)]
struct Session {
    token: Secret,
    master: Option<Secret>,
}

/// A logged-in session. Cheap to clone; clones share the session.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: Http,
    base: Url,
    config: Config,
    session: RwLock<Session>,
    sequence: AtomicU64,
}

impl Client {
    /// Logs in. Fails fast (bounded retries) when the server cannot be reached.
    pub async fn connect(config: Config) -> Result<Self> {
        let http = Http::new(&config)?;
        let base = config.base_url()?;
        let session = login(&http, &base, &config).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                config,
                session: RwLock::new(session),
                sequence: AtomicU64::new(1),
            }),
        })
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Runs one statement with positional bindings (`?` placeholders, in order).
    pub async fn query(&self, sql: &str, bindings: &[Binding]) -> Result<QueryResult> {
        let data = self.submit(sql, bindings).await?;
        QueryResult::from_data(data, self.inner.http.clone())
    }

    /// Runs a statement and returns the rows it affected (0 for statements that report none).
    pub async fn execute(&self, sql: &str, bindings: &[Binding]) -> Result<u64> {
        Ok(self
            .query(sql, bindings)
            .await?
            .rows_affected()
            .unwrap_or(0))
    }

    pub(crate) async fn submit(&self, sql: &str, bindings: &[Binding]) -> Result<QueryData> {
        let mut body = json!({
            "sqlText": sql,
            "asyncExec": false,
            "sequenceId": self.inner.sequence.fetch_add(1, Ordering::Relaxed),
            "querySubmissionTime": chrono::Utc::now().timestamp_millis(),
        });
        if !bindings.is_empty() {
            let map: serde_json::Map<String, serde_json::Value> = bindings
                .iter()
                .enumerate()
                .map(|(i, b)| ((i + 1).to_string(), b.to_wire()))
                .collect();
            body["bindings"] = map.into();
        }
        // One request id for every attempt, so a real account can recognise a retried statement.
        let request_id = uuid::Uuid::new_v4().to_string();
        let mut renewed = false;
        loop {
            let mut url = self
                .inner
                .base
                .join("/queries/v1/query-request")
                .expect("static path");
            url.query_pairs_mut().append_pair("requestId", &request_id);
            let token = self.inner.session.read().await.token.clone();
            let envelope: Envelope<QueryData> =
                self.inner.http.post(url, Some(&token), &body).await?;
            match envelope.code.as_deref() {
                _ if envelope.success => return Ok(envelope.data.unwrap_or_default()),
                Some(SESSION_EXPIRED) if !renewed => {
                    renewed = true;
                    self.renew(&token).await?;
                }
                Some(QUERY_IN_PROGRESS | QUERY_IN_PROGRESS_ASYNC) => {
                    return self
                        .poll(envelope.data.and_then(|d| d.get_result_url))
                        .await;
                }
                _ => return Err(sql_error(envelope)),
            }
        }
    }

    /// Waits for a statement that outlived the request, by polling its result URL.
    async fn poll(&self, result_url: Option<String>) -> Result<QueryData> {
        let path =
            result_url.ok_or_else(|| Error::protocol("query in progress without a result URL"))?;
        let url = self
            .inner
            .base
            .join(&path)
            .map_err(|e| Error::protocol(format!("result URL {path:?}: {e}")))?;
        let deadline = Instant::now() + self.inner.config.request_timeout;
        let mut wait = Duration::from_millis(100);
        loop {
            let token = self.inner.session.read().await.token.clone();
            let envelope: Envelope<QueryData> = self.inner.http.get(url.clone(), &token).await?;
            match envelope.code.as_deref() {
                _ if envelope.success => return Ok(envelope.data.unwrap_or_default()),
                Some(QUERY_IN_PROGRESS | QUERY_IN_PROGRESS_ASYNC) if Instant::now() < deadline => {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
                Some(SESSION_EXPIRED) => self.renew(&token).await?,
                _ => return Err(sql_error(envelope)),
            }
        }
    }

    /// Renews the session token with the master token, or logs in again when there is none.
    async fn renew(&self, expired: &Secret) -> Result<()> {
        let mut session = self.inner.session.write().await;
        if &session.token != expired {
            return Ok(()); // another task renewed it meanwhile
        }
        tracing::debug!("session token expired; renewing");
        *session = match session.master.clone() {
            Some(master) => {
                let mut url = self
                    .inner
                    .base
                    .join("/session/token-request")
                    .expect("static path");
                url.query_pairs_mut()
                    .append_pair("requestId", &uuid::Uuid::new_v4().to_string());
                let body = json!({"oldSessionToken": expired.expose(), "requestType": "RENEW"});
                let envelope: Envelope<RenewData> =
                    self.inner.http.post(url, Some(&master), &body).await?;
                match envelope.data {
                    Some(d) if envelope.success => Session {
                        token: Secret::new(d.session_token),
                        master: d.master_token.map(Secret::new).or(Some(master)),
                    },
                    _ => return Err(auth_error(envelope.code, envelope.message)),
                }
            }
            None => login(&self.inner.http, &self.inner.base, &self.inner.config).await?,
        };
        Ok(())
    }

    /// Ends the session on the server.
    pub async fn close(self) -> Result<()> {
        let mut url = self.inner.base.join("/session").expect("static path");
        url.query_pairs_mut().append_pair("delete", "true");
        let token = self.inner.session.read().await.token.clone();
        let envelope: Envelope<serde_json::Value> =
            self.inner.http.post(url, Some(&token), &json!({})).await?;
        if envelope.success {
            Ok(())
        } else {
            Err(auth_error(envelope.code, envelope.message))
        }
    }

    pub(crate) fn http(&self) -> &Http {
        &self.inner.http
    }
}

fn sql_error(envelope: Envelope<QueryData>) -> Error {
    let data = envelope.data.unwrap_or_default();
    Error::Sql {
        code: envelope
            .code
            .or(data.error_code)
            .unwrap_or_else(|| "unknown".into()),
        sql_state: data.sql_state.unwrap_or_else(|| "?????".into()),
        message: envelope.message.unwrap_or_else(|| "no message".into()),
        query_id: data.query_id,
    }
}

fn auth_error(code: Option<String>, message: Option<String>) -> Error {
    Error::Auth {
        code: code.unwrap_or_else(|| "unknown".into()),
        message: message.unwrap_or_else(|| "no message".into()),
    }
}

async fn login(http: &Http, base: &Url, config: &Config) -> Result<Session> {
    let mut url = base.join("/session/v1/login-request").expect("static path");
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("requestId", &uuid::Uuid::new_v4().to_string());
        for (key, value) in [
            ("databaseName", &config.database),
            ("schemaName", &config.schema),
            ("warehouse", &config.warehouse),
            ("roleName", &config.role),
        ] {
            if let Some(v) = value {
                q.append_pair(key, v);
            }
        }
    }
    let mut data = json!({
        "CLIENT_APP_ID": "sluice",
        "CLIENT_APP_VERSION": env!("CARGO_PKG_VERSION"),
        "ACCOUNT_NAME": config.account,
        "LOGIN_NAME": config.user,
        "CLIENT_ENVIRONMENT": {"APPLICATION": "sluice", "OS": std::env::consts::OS},
        "SESSION_PARAMETERS": config.session_parameters,
    });
    match &config.auth {
        Auth::Password(password) => data["PASSWORD"] = password.expose().into(),
        Auth::KeyPair { private_key_pem } => {
            let key = crate::jwt::parse_key(private_key_pem.expose())?;
            data["AUTHENTICATOR"] = "SNOWFLAKE_JWT".into();
            data["TOKEN"] = crate::jwt::token(
                &config.account,
                &config.user,
                &key,
                chrono::Utc::now().timestamp(),
            )?
            .into();
        }
    }
    let envelope: Envelope<LoginData> = http.post(url, None, &json!({ "data": data })).await?;
    match envelope.data {
        Some(d) if envelope.success => Ok(Session {
            token: Secret::new(d.token),
            master: d.master_token.map(Secret::new),
        }),
        _ => Err(auth_error(envelope.code, envelope.message)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_that_may_have_run_is_resent_only_where_the_server_dedups() {
        assert!(
            may_resend(Resend::OnlyUnsent, true),
            "never arrived: resend"
        );
        assert!(
            !may_resend(Resend::OnlyUnsent, false),
            "fakesnow would run it twice"
        );
        assert!(
            may_resend(Resend::Deduplicated, false),
            "Snowflake runs it once"
        );
        let fakesnow = Config::fakesnow("http://127.0.0.1:1").unwrap();
        assert_eq!(fakesnow.retry.resend, Resend::OnlyUnsent);
        assert_eq!(RetryPolicy::default().resend, Resend::Deduplicated);
    }
}
