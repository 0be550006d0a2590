//! Row changes to RabbitMQ: persistent, with publisher confirms, and `mandatory`, so a change
//! no queue takes comes back instead of being confirmed and dropped.

use futures::FutureExt as _;
use futures::future::BoxFuture;
use lapin::Confirmation;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};

use crate::CdcError;
use crate::confirm::Outcome;

pub(crate) struct Publisher {
    connection: lapin::Connection,
    channel: lapin::Channel,
    exchange: String,
}

impl Publisher {
    pub async fn connect(url: &str, exchange: &str) -> Result<Self, CdcError> {
        let connection = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
            .await
            .map_err(CdcError::amqp("connecting"))?;
        let channel = connection
            .create_channel()
            .await
            .map_err(CdcError::amqp("opening a channel"))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(CdcError::amqp("enabling publisher confirms"))?;
        Ok(Self {
            connection,
            channel,
            exchange: exchange.to_owned(),
        })
    }

    /// Publishes one event; the future resolves when the broker has answered for it.
    pub async fn publish(
        &self,
        event: &events::Event,
    ) -> Result<BoxFuture<'static, Outcome>, CdcError> {
        let routing_key = event.routing_key();
        let sent_us = runtime::latency::unix_micros();
        let mut headers = FieldTable::default();
        headers.insert(
            runtime::latency::PUBLISHED_AT_HEADER.into(),
            AMQPValue::LongLongInt(sent_us as i64),
        );
        let properties = lapin::BasicProperties::default()
            .with_content_type("application/x-protobuf".into())
            .with_type(event.event_type().as_str().into())
            .with_message_id(event.event_id().into())
            .with_timestamp(sent_us / 1_000_000)
            .with_delivery_mode(2)
            .with_headers(headers);
        let confirm = self
            .channel
            .basic_publish(
                self.exchange.as_str().into(),
                routing_key.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &event.encode(),
                properties,
            )
            .await
            .map_err(CdcError::amqp(format!("publishing {routing_key}")))?;
        Ok(async move {
            match confirm.await {
                Ok(Confirmation::Ack(None)) => Outcome::Confirmed,
                Ok(Confirmation::Ack(Some(_))) => Outcome::Unroutable(routing_key),
                Ok(Confirmation::Nack(_)) => Outcome::Failed(format!("{routing_key} nacked")),
                Ok(Confirmation::NotRequested) => {
                    Outcome::Failed("publisher confirms are off".into())
                }
                Err(e) => Outcome::Failed(format!("{routing_key}: {e}")),
            }
        }
        .boxed())
    }

    pub fn exchange(&self) -> &str {
        &self.exchange
    }

    pub async fn close(self) {
        let _ = self.channel.close(200, "cdc stopping".into()).await;
        let _ = self.connection.close(200, "cdc stopping".into()).await;
    }
}
