//! Faults on purpose, in the spirit of Jepsen's nemesis: the scenario's `[[chaos]]` schedule
//! (or `--chaos`) carried out while the stream runs, then healed, and a checker that counts what
//! was lost, duplicated or unexpected.
//!
//! - [`proxy`]: the TCP fault proxy (Toxiproxy's refuse, reset, blackhole, latency) the
//!   components connect through, so an outage can be switched on and off at run time.

pub mod nemesis;
pub mod proxy;
