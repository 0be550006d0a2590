//! A Snowflake client that speaks the connectors' HTTP protocol (`/session/v1/login-request`,
//! `/queries/v1/query-request`), so the same code runs against fakesnow and a real account.
//!
//! - [`Client::connect`] logs in with a password or a key pair (JWT) and renews the session
//!   token when it expires.
//! - [`Client::query`] runs one statement with positional [`Binding`]s. Results arrive as JSON
//!   or Arrow rowsets, possibly split into chunks; [`QueryResult::next_batch`] hands them over one
//!   batch at a time, decoding values only when read ([`RowBatch::get`], [`RowBatch::value`]).
//! - [`Client::put_bytes`] / [`Client::put_file`] upload to an internal stage through the
//!   presigned-URL flow (what fakesnow and Snowflake on GCP answer with), for `COPY INTO`.
//!
//! Transient failures (connection errors, 429 and 5xx answers) are retried a bounded number of
//! times with backoff; SQL errors are returned at once with their code and SQLSTATE. Passwords,
//! keys and tokens never appear in errors, logs or `Debug` output.

mod arrow_stream;
mod bindings;
mod client;
mod config;
mod decode;
mod error;
mod jwt;
mod put;
mod result;
mod value;
mod wire;

pub use bindings::Binding;
pub use client::Client;
pub use config::{Auth, Config, Resend, RetryPolicy, Secret};
pub use error::Error;
pub use put::{Compression, PutOptions, PutOutcome};
pub use result::{Column, ColumnType, QueryResult, RowBatch};
pub use value::{Decimal, FromValue, Value};
