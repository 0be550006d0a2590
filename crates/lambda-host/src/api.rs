//! The Lambda Runtime API of one execution environment, on 127.0.0.1: the function's process
//! asks for its next invocation (a long poll), then posts the response or an error. See
//! <https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::{Mutex as AsyncMutex, mpsc, oneshot};

const PREFIX: &str = "/2018-06-01/runtime";

/// One invocation waiting for, or held by, an environment.
pub struct Invocation {
    pub request_id: String,
    pub payload: Vec<u8>,
    pub reply: oneshot::Sender<Outcome>,
}

/// How an invocation ended.
#[derive(Debug)]
pub enum Outcome {
    /// The function returned this body.
    Response(Bytes),
    /// The function reported an error (its `errorType: errorMessage`).
    Error(String),
    /// The environment's process exited while holding the invocation.
    Crashed(String),
    /// The function did not answer within its timeout; its process was killed.
    TimedOut(Duration),
}

/// The invocation an environment holds now.
pub struct Held {
    pub request_id: String,
    pub reply: oneshot::Sender<Outcome>,
    pub since: Instant,
}

/// What one environment's API shares with its supervisor.
pub struct EnvState {
    pub queue: Arc<AsyncMutex<mpsc::Receiver<Invocation>>>,
    pub held: Mutex<Option<Held>>,
    pub function_arn: String,
    pub timeout: Duration,
    /// Set at the process's first `next`: its cold start is over.
    pub ready: Mutex<Option<Instant>>,
    pub init_error: Mutex<Option<String>>,
}

impl EnvState {
    /// Ends the held invocation with `outcome` if it is still `request_id`'s.
    pub fn finish(&self, request_id: Option<&str>, outcome: Outcome) -> bool {
        let mut held = self.held.lock().expect("held");
        match held.as_ref() {
            Some(h) if request_id.is_none_or(|id| id == h.request_id) => {
                let h = held.take().expect("checked");
                // The mapping may have stopped waiting (shutdown): nothing to tell then.
                let _ = h.reply.send(outcome);
                true
            }
            _ => false,
        }
    }
}

/// Binds the API on an ephemeral loopback port and serves it until the returned task is
/// aborted, which also ends every connection (and a request for work still waiting).
pub async fn serve(
    state: Arc<EnvState>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let state = state.clone();
                    connections.spawn(async move {
                        let service =
                            hyper::service::service_fn(move |req| route(state.clone(), req));
                        // A process that dies mid-request closes its connection: nothing to
                        // report.
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    });
                }
                Some(_) = connections.join_next() => {}
            }
        }
    });
    Ok((addr, task))
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

async fn route(
    state: Arc<EnvState>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return Ok(reply(StatusCode::NOT_FOUND, "unknown path"));
    };
    let method = req.method().clone();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(reply(StatusCode::BAD_REQUEST, "unreadable body")),
    };
    let parts: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    Ok(match (method, parts.as_slice()) {
        (Method::GET, ["invocation", "next"]) => next(&state).await,
        (Method::POST, ["invocation", id, "response"]) => {
            answered(&state, id, Outcome::Response(body))
        }
        (Method::POST, ["invocation", id, "error"]) => {
            answered(&state, id, Outcome::Error(error_text(&body)))
        }
        (Method::POST, ["init", "error"]) => {
            *state.init_error.lock().expect("init error") = Some(error_text(&body));
            reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
        }
        _ => reply(StatusCode::NOT_FOUND, "unknown Runtime API call"),
    })
}

/// `errorType: errorMessage` from the runtime's error document.
fn error_text(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Doc {
        #[serde(rename = "errorType", default)]
        error_type: String,
        #[serde(rename = "errorMessage", default)]
        error_message: String,
    }
    match serde_json::from_slice::<Doc>(body) {
        Ok(d) => format!("{}: {}", d.error_type, d.error_message),
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    }
}

async fn next(state: &EnvState) -> Response<Full<Bytes>> {
    state
        .ready
        .lock()
        .expect("ready")
        .get_or_insert_with(Instant::now);
    // One invocation at a time per environment, as in Lambda; a process that asks again while
    // holding one has abandoned it.
    state.finish(
        None,
        Outcome::Error("the runtime asked for the next invocation without answering".into()),
    );
    let invocation = {
        let mut queue = state.queue.lock().await;
        queue.recv().await
    };
    let Some(invocation) = invocation else {
        return reply(StatusCode::GONE, "the function is shutting down");
    };
    let deadline_ms = SystemTime::now()
        .checked_add(state.timeout)
        .unwrap_or_else(SystemTime::now)
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    *state.held.lock().expect("held") = Some(Held {
        request_id: invocation.request_id.clone(),
        reply: invocation.reply,
        since: Instant::now(),
    });
    let mut r = reply(StatusCode::OK, invocation.payload);
    let headers = r.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = hyper::header::HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    set("content-type", "application/json".into());
    set("lambda-runtime-aws-request-id", invocation.request_id);
    set("lambda-runtime-deadline-ms", deadline_ms.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        state.function_arn.clone(),
    );
    set(
        "lambda-runtime-trace-id",
        format!(
            "Root=1-{:08x}-{}",
            deadline_ms / 1000,
            uuid::Uuid::new_v4().simple()
        ),
    );
    r
}

fn answered(state: &EnvState, id: &str, outcome: Outcome) -> Response<Full<Bytes>> {
    if state.finish(Some(id), outcome) {
        reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
    } else {
        reply(
            StatusCode::BAD_REQUEST,
            format!(
                r#"{{"errorType":"InvalidRequestID","errorMessage":"no invocation {id} in flight"}}"#
            ),
        )
    }
}
