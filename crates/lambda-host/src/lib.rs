//! A Lambda function's `bootstrap` run as AWS Lambda runs it, fed as an SQS event-source
//! mapping feeds it: the batcher's production shape, without AWS.
//!
//! - [`api`]: the Runtime API of one execution environment (next, response, error);
//! - [`function`]: the environments, each one process of the bootstrap, replaced when it
//!   crashes or outlives its timeout;
//! - [`mapping`]: the event-source mapping's invocation, on the batcher's own poller (receive,
//!   batch by size and window, delete exactly what the function did not report failed);
//! - [`event`]: the SQS event and the partial batch response.

pub mod api;
pub mod event;
pub mod function;
pub mod mapping;
