//! The scenario runner. [`publish`] sends a scenario's stream to RabbitMQ at the scenario's
//! rate with publisher confirms, as production's producers do.

pub mod publish;
