//! Publishing a scenario to a real RabbitMQ: every body arrives in its source's queue with the
//! documented properties, paced at the scenario's rate. A module of `e2e_properties.rs`, on its
//! scratch stack (one stack less to start), alone on it while it reads the queues.

use std::collections::HashMap;
use std::time::Duration;

use harness::rig::publish::{Pacing, PublishConfig, publish};
use lapin::options::{BasicAckOptions, BasicGetOptions};
use stack::scratch::ScratchStack;

use crate::common::RUNS;

const SCENARIO: &str = r#"
name = "publish-test"
seed = 3
start = "2026-03-01T12:00:00Z"
duration = "2s"
[rates]
cards = 20
orders = 200
manufacturing = 30
[faults]
duplicate_ratio = 0.05
poison_ratio = 0.02
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_arrives_in_its_queues_with_ids_and_keys_at_its_rate() {
    let stack = ScratchStack::shared().await;
    // No components run meanwhile: they would take the bodies this test reads back.
    let _one = RUNS.lock().await;
    let scenario = synth::Scenario::parse("publish-test.toml", SCENARIO).unwrap();
    let emissions: Vec<synth::Emission> = synth::Generator::new(&scenario, None).stream().collect();
    let config = PublishConfig::new(stack.state.rabbitmq.amqp_url.clone());
    assert_eq!(config.pacing, Pacing::Scenario);
    let mut progress = 0;
    let report = publish(&config, emissions.clone(), |n| progress = n)
        .await
        .unwrap();
    assert_eq!(report.published, emissions.len() as u64);
    assert_eq!(progress, report.published);
    assert!(report.duplicates > 0 && report.poison > 0, "{report:?}");
    assert_eq!(
        report.events + report.duplicates + report.poison,
        report.published
    );
    // Paced: it took the scenario's span, not less.
    assert!(report.elapsed >= report.scheduled, "{report:?}");
    assert!(report.target_rate().is_some());

    // Expected per queue: bodies by source, in publish order.
    let mut expected: HashMap<&str, Vec<&synth::Emission>> = HashMap::new();
    for e in &emissions {
        let key = e.body.routing_key();
        let queue = ["cards", "orders", "manufacturing"]
            .into_iter()
            .find(|q| key.starts_with(&format!("{q}.")))
            .unwrap();
        expected.entry(queue).or_default().push(e);
    }
    let conn = lapin::Connection::connect(
        &stack.state.rabbitmq.amqp_url,
        lapin::ConnectionProperties::default(),
    )
    .await
    .unwrap();
    let channel = conn.create_channel().await.unwrap();
    for (queue, want) in expected {
        for emission in want {
            let mut got = None;
            for _ in 0..50 {
                got = channel
                    .basic_get(queue.into(), BasicGetOptions::default())
                    .await
                    .unwrap();
                if got.is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let message = got.unwrap_or_else(|| panic!("queue {queue} ran short"));
            let d = &message.delivery;
            assert_eq!(d.data, emission.body.encode());
            assert_eq!(d.routing_key.as_str(), emission.body.routing_key());
            let props = &d.properties;
            assert_eq!(
                props.content_type().as_ref().unwrap().as_str(),
                "application/x-protobuf"
            );
            assert_eq!(props.delivery_mode(), &Some(2));
            if let Some(event) = emission.body.event() {
                assert_eq!(
                    props.message_id().as_ref().unwrap().as_str(),
                    event.event_id()
                );
            }
            d.ack(BasicAckOptions::default()).await.unwrap();
        }
    }
    conn.close(200, "done".into()).await.unwrap();
}
