//! The cdc component against a real PostgreSQL and RabbitMQ (a scratch native stack): each test
//! has its own database (with infra's shop schema and publication), slot, exchange and queue, so
//! tests share the stack and not state. What reaches RAW from there is the e2e's to prove.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cdc::{CdcConfig, CdcError, Metrics};
use events::{Event, Payload};
use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use stack::scratch::ScratchStack;
use tokio_postgres::Client;

struct Fixture {
    _stack: Arc<ScratchStack>,
    pg: Client,
    channel: lapin::Channel,
    _connection: lapin::Connection,
    config: CdcConfig,
    queue: String,
    /// Every change received so far, in arrival order.
    received: Vec<Event>,
}

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// The shop schema of infra/postgres/shop.sql.
fn shop_sql() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../infra/postgres/shop.sql"
    ))
    .unwrap()
}

impl Fixture {
    /// The slot's confirmed_flush_lsn: how far the server lets go of WAL.
    async fn confirmed_lsn(&self) -> u64 {
        let text: String = self
            .pg
            .query_one(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
                &[&self.config.slot],
            )
            .await
            .unwrap()
            .get(0);
        pg_walstream::parse_lsn(&text).unwrap()
    }

    /// `queue_args` shape the test's queue (e.g. a length limit that makes the broker refuse).
    async fn new(queue_args: FieldTable) -> Self {
        let stack = ScratchStack::shared().await;
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let admin = connect(&stack.state.postgres.url).await;
        let db = format!("cdc_{id}");
        admin
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .await
            .unwrap();
        let url = stack
            .state
            .postgres
            .url
            .rsplit_once('/')
            .map(|(base, _)| format!("{base}/{db}"))
            .unwrap();
        let pg = connect(&url).await;
        pg.batch_execute(&shop_sql()).await.unwrap();

        let connection = lapin::Connection::connect(
            &stack.state.rabbitmq.amqp_url,
            lapin::ConnectionProperties::default(),
        )
        .await
        .unwrap();
        let channel = connection.create_channel().await.unwrap();
        let exchange = format!("t-{id}");
        channel
            .exchange_declare(
                exchange.as_str().into(),
                lapin::ExchangeKind::Topic,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let queue = format!("t-{id}");
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                queue_args,
            )
            .await
            .unwrap();
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.as_str().into(),
                "cdc.#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let mut config = CdcConfig::new(url, stack.state.rabbitmq.amqp_url.clone());
        config.exchange = exchange;
        config.slot = format!("t_{id}");
        config.shutdown_grace = Duration::from_secs(5);
        Self {
            _stack: stack,
            pg,
            channel,
            _connection: connection,
            config,
            queue,
            received: Vec::new(),
        }
    }

    async fn customers(&self, ids: std::ops::Range<u32>) {
        let rows: Vec<String> = ids
            .map(|i| format!("('c-{i:05}', 'Name {i}', 'c{i}@example.com', 'NL', 'bronze', now())"))
            .collect();
        self.pg
            .batch_execute(&format!(
                "INSERT INTO shop.customers VALUES {}",
                rows.join(", ")
            ))
            .await
            .unwrap();
    }

    /// Waits for the cdc's snapshot record (its snapshot confirmed by the broker).
    async fn snapshot_recorded(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while cdc::slot::snapshot_record(&self.pg, &self.config.slot)
            .await
            .unwrap()
            .is_none()
        {
            assert!(Instant::now() < deadline, "no snapshot record");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Messages waiting in the test's queue.
    async fn waiting(&self) -> u32 {
        self.channel
            .queue_declare(
                self.queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap()
            .message_count()
    }

    /// Takes every message waiting in the test's queue.
    async fn drain(&mut self) -> usize {
        let mut n = 0;
        while let Some(message) = self
            .channel
            .basic_get(self.queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            self.received
                .push(Event::decode(&message.delivery.data).unwrap());
            n += 1;
        }
        n
    }

    /// Takes messages until `done` holds for what was received, or fails after `within`.
    async fn receive_until(&mut self, within: Duration, done: impl Fn(&[Event]) -> bool) {
        let deadline = Instant::now() + within;
        loop {
            self.drain().await;
            if done(&self.received) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not received within {within:?}: {} changes so far",
                self.received.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// shop.customers now, as the change log's rows (keys and typed after-images) say it.
    async fn source_customers(&self) -> BTreeMap<String, serde_json::Value> {
        self.pg
            .query(
                "SELECT customer_id, name, email, country, tier, \
                 to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') \
                 FROM shop.customers",
                &[],
            )
            .await
            .unwrap()
            .into_iter()
            .map(|r| {
                let id: String = r.get(0);
                let row = serde_json::json!({
                    "customer_id": id, "name": r.get::<_, String>(1), "email": r.get::<_, String>(2),
                    "country": r.get::<_, String>(3), "tier": r.get::<_, String>(4),
                    "updated_at": r.get::<_, String>(5),
                });
                (id, row)
            })
            .collect()
    }
}

fn change(e: &Event) -> &events::RowChange {
    match e.payload() {
        Payload::RowChange(c) => c,
        other => panic!("not a row change: {other:?}"),
    }
}

fn position(e: &Event) -> (u64, u64) {
    let s = change(e).source.as_ref().unwrap();
    (s.commit_lsn, s.change_lsn)
}

/// The customers the change log gives: per key the change with the greatest position; a delete
/// removes the row.
fn current_customers(events: &[Event]) -> BTreeMap<String, serde_json::Value> {
    let mut latest: HashMap<String, &Event> = HashMap::new();
    for e in events
        .iter()
        .filter(|e| change(e).table == "shop.customers")
    {
        let key = change(e).key.clone();
        match latest.get(&key) {
            Some(seen) if position(seen) >= position(e) => {}
            _ => {
                latest.insert(key, e);
            }
        }
    }
    latest
        .into_values()
        .filter(|e| change(e).op != "d")
        .map(|e| {
            let after: serde_json::Value = serde_json::from_str(&change(e).after).unwrap();
            (after["customer_id"].as_str().unwrap().to_owned(), after)
        })
        .collect()
}

/// Streamed transactions whose distinct changes received are not their size: (commit LSN,
/// received, size).
fn partial_transactions(events: &[Event]) -> Vec<(u64, usize, u32)> {
    let mut by_tx: BTreeMap<u64, (HashSet<&str>, u32)> = BTreeMap::new();
    for e in events.iter().filter(|e| change(e).op != "r") {
        let s = change(e).source.as_ref().unwrap();
        let entry = by_tx.entry(s.commit_lsn).or_default();
        entry.0.insert(e.event_id());
        entry.1 = s.tx_size;
    }
    by_tx
        .into_iter()
        .filter(|(_, (ids, size))| ids.len() != *size as usize)
        .map(|(lsn, (ids, size))| (lsn, ids.len(), size))
        .collect()
}

fn distinct(events: &[Event]) -> usize {
    events
        .iter()
        .map(Event::event_id)
        .collect::<HashSet<_>>()
        .len()
}

/// The component in-process until `stop` is sent.
fn spawn(
    config: CdcConfig,
) -> (
    tokio::task::JoinHandle<Result<cdc::MetricsSnapshot, CdcError>>,
    tokio::sync::oneshot::Sender<()>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(cdc::run(config, Arc::new(Metrics::default()), async move {
        let _ = stopped.await;
    }));
    (task, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_then_stream_gives_every_change_in_debezium_shape() {
    let mut f = Fixture::new(FieldTable::default()).await;
    f.customers(0..20).await;
    f.pg.batch_execute("INSERT INTO shop.order_status VALUES ('ord-1', 'placed', now())")
        .await
        .unwrap();
    let (task, stop) = spawn(f.config.clone());
    f.receive_until(Duration::from_secs(30), |r| r.len() >= 21)
        .await;
    assert!(
        f.received.iter().all(|e| change(e).op == "r"),
        "the snapshot first"
    );
    let snapshot_lsn = position(&f.received[0]).0;

    // A transaction of several changes, an update of the order, and a delete.
    f.pg
        .batch_execute(
            "BEGIN; \
             UPDATE shop.customers SET country = 'DE', tier = 'gold', updated_at = now() WHERE customer_id = 'c-00001'; \
             INSERT INTO shop.customers VALUES ('c-new', 'New', 'n@example.com', 'FR', 'silver', now()); \
             UPDATE shop.order_status SET status = 'paid', updated_at = now() WHERE order_id = 'ord-1'; \
             COMMIT; \
             DELETE FROM shop.customers WHERE customer_id = 'c-00002';",
        )
        .await
        .unwrap();
    f.receive_until(Duration::from_secs(30), |r| r.len() >= 25)
        .await;
    let _ = stop.send(());
    let metrics = task.await.unwrap().unwrap();
    assert_eq!(metrics.snapshot_rows, 21);
    assert_eq!(metrics.changes, 4);

    let streamed: Vec<&Event> = f.received.iter().filter(|e| change(e).op != "r").collect();
    let ops: Vec<&str> = streamed.iter().map(|e| change(e).op.as_str()).collect();
    assert_eq!(ops, ["u", "c", "u", "d"]);
    let update = change(streamed[0]);
    let before: serde_json::Value = serde_json::from_str(&update.before).unwrap();
    let after: serde_json::Value = serde_json::from_str(&update.after).unwrap();
    assert_eq!(
        (&before["country"], &after["country"]),
        (&"NL".into(), &"DE".into()),
        "REPLICA IDENTITY FULL gives the row before"
    );
    assert_eq!(streamed[0].routing_key(), "cdc.shop.customers");
    assert_eq!(streamed[2].routing_key(), "cdc.shop.order_status");
    assert!(
        change(streamed[2]).before.is_empty(),
        "DEFAULT identity: no row before"
    );
    let source = |e: &Event| change(e).source.clone().unwrap();
    assert_eq!(
        streamed[..3]
            .iter()
            .map(|e| (source(e).tx_order, source(e).tx_size))
            .collect::<Vec<_>>(),
        [(1, 3), (2, 3), (3, 3)],
        "one transaction of three"
    );
    assert_eq!(
        source(streamed[0]).commit_lsn,
        source(streamed[2]).commit_lsn
    );
    assert!(
        source(streamed[0]).commit_lsn > snapshot_lsn,
        "streamed after the snapshot"
    );
    assert!(source(streamed[3]).commit_lsn > source(streamed[0]).commit_lsn);
    let deleted = change(streamed[3]);
    assert!(deleted.after.is_empty());
    assert!(deleted.before.contains("c-00002"));
    assert_eq!(current_customers(&f.received), f.source_customers().await);
    // The slot moved past everything confirmed. The server applies the last feedback message
    // on its own time after the cdc stopped (seconds on a busy machine): wait for it, bounded.
    let deadline = Instant::now() + Duration::from_secs(15);
    let confirmed = loop {
        let confirmed = f.confirmed_lsn().await;
        if confirmed == metrics.acked_lsn || Instant::now() >= deadline {
            break confirmed;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(confirmed, metrics.acked_lsn);
    assert!(metrics.acked_lsn > source(streamed[3]).commit_lsn);
}

/// A broker that refuses publishes (a full queue that rejects them) must not let the slot move
/// past them: once the queue has room, every change arrives. Acknowledging a refused change
/// (or one never confirmed) loses it, and this test then goes red.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_the_broker_refused_are_sent_again_until_it_takes_them() {
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongLongInt(40));
    args.insert(
        "x-overflow".into(),
        AMQPValue::LongString("reject-publish".into()),
    );
    let mut f = Fixture::new(args).await;
    let (task, stop) = spawn(f.config.clone());
    // Wait for the empty snapshot, then 200 inserts in 20 transactions.
    f.snapshot_recorded(Duration::from_secs(30)).await;
    for t in 0..20 {
        f.customers(t * 10..t * 10 + 10).await;
    }
    // The queue takes 40; the rest is refused until it is drained.
    tokio::time::sleep(Duration::from_secs(2)).await;
    f.receive_until(Duration::from_secs(120), |r| distinct(r) >= 200)
        .await;
    let _ = stop.send(());
    let metrics = task.await.unwrap().unwrap();
    assert!(
        metrics.restarts > 0,
        "the refusals ended sessions: {metrics:?}"
    );
    assert_eq!(current_customers(&f.received), f.source_customers().await);
    assert!(partial_transactions(&f.received).is_empty());
}

fn cdc_process(config: &CdcConfig, metrics: &std::path::Path) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_cdc"))
        .args(["--postgres-url", &config.postgres_url])
        .args(["--amqp-url", &config.amqp_url])
        .args(["--exchange", &config.exchange, "--slot", &config.slot])
        .args(["--max-unconfirmed", "200"])
        .arg("--metrics-file")
        .arg(metrics)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// SIGKILL during the snapshot and again in the middle of a stream of transactions: after a
/// restart every change arrives (some twice, with the same id), no transaction arrives in part,
/// and the change log gives the source table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_cdc_resumes_without_loss_and_never_splits_a_transaction() {
    let mut f = Fixture::new(FieldTable::default()).await;
    f.customers(0..20_000).await;
    let metrics = std::env::temp_dir().join(format!("{}.metrics.json", f.config.slot));

    // Killed while the snapshot is being published.
    let mut cdc = cdc_process(&f.config, &metrics);
    let deadline = Instant::now() + Duration::from_secs(60);
    while f.waiting().await == 0 {
        assert!(Instant::now() < deadline, "the snapshot never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cdc.kill().await.unwrap();
    let recorded = cdc::slot::snapshot_record(&f.pg, &f.config.slot)
        .await
        .unwrap();
    assert!(recorded.is_none(), "killed before the snapshot completed");

    // Again: this one takes a new snapshot; once it is recorded, transactions run while it
    // streams, and it is killed mid-stream.
    let mut cdc = cdc_process(&f.config, &metrics);
    let deadline = Instant::now() + Duration::from_secs(90);
    while cdc::slot::snapshot_record(&f.pg, &f.config.slot)
        .await
        .unwrap()
        .is_none()
    {
        f.drain().await;
        assert!(
            Instant::now() < deadline,
            "the second snapshot never completed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let writer = {
        let url = f.config.postgres_url.clone();
        tokio::spawn(async move {
            let mut pg = connect(&url).await;
            for t in 0..300u32 {
                let tx = pg.transaction().await.unwrap();
                // Updates below 10000, deletes above 19000: every statement changes one row.
                for i in 0..5u32 {
                    let id = format!("c-{:05}", (t * 37 + i * 1999) % 10_000);
                    tx.execute(
                        "UPDATE shop.customers SET tier = 'gold', email = $2, updated_at = now() WHERE customer_id = $1",
                        &[&id, &format!("t{t}-{i}@example.com")],
                    )
                    .await
                    .unwrap();
                }
                tx.execute(
                    "DELETE FROM shop.customers WHERE customer_id = $1",
                    &[&format!("c-{:05}", 19_999 - t)],
                )
                .await
                .unwrap();
                tx.commit().await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        f.drain().await;
        if f.received.iter().filter(|e| change(e).op != "r").count() > 300 {
            break;
        }
        assert!(Instant::now() < deadline, "the stream never got going");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cdc.kill().await.unwrap();
    writer.await.unwrap();

    // The third run resumes from the slot.
    let mut cdc = cdc_process(&f.config, &metrics);
    let expected_changes = 300 * 6;
    f.receive_until(Duration::from_secs(120), |r| {
        r.iter()
            .filter(|e| change(e).op != "r")
            .map(Event::event_id)
            .collect::<HashSet<_>>()
            .len()
            >= expected_changes
    })
    .await;
    // Nothing more to come: one more look after the last commit's feedback.
    tokio::time::sleep(Duration::from_secs(1)).await;
    f.drain().await;
    // SAFETY: kill(2) on the PID of a child this test started and has not reaped.
    unsafe { libc::kill(cdc.id().unwrap() as i32, libc::SIGTERM) };
    assert!(cdc.wait().await.unwrap().success());

    assert_eq!(
        partial_transactions(&f.received),
        [],
        "no transaction arrives in part"
    );
    let streamed: HashSet<&str> = f
        .received
        .iter()
        .filter(|e| change(e).op != "r")
        .map(Event::event_id)
        .collect();
    assert_eq!(
        streamed.len(),
        expected_changes,
        "every change, each id once"
    );
    let copies = f.received.len() - distinct(&f.received);
    eprintln!(
        "received {} messages: {} distinct changes, {copies} sent again after the kills",
        f.received.len(),
        distinct(&f.received)
    );
    // Same id, same payload: a copy is a copy.
    let mut seen: HashMap<&str, events::Fingerprint> = HashMap::new();
    for e in &f.received {
        if let Some(fp) = seen.insert(e.event_id(), e.fingerprint()) {
            assert_eq!(
                fp,
                e.fingerprint(),
                "{} came with two payloads",
                e.event_id()
            );
        }
    }
    assert_eq!(current_customers(&f.received), f.source_customers().await);
}

async fn refused(config: CdcConfig) -> String {
    let outcome = tokio::time::timeout(
        Duration::from_secs(30),
        cdc::run(config, Arc::new(Metrics::default()), std::future::pending()),
    )
    .await
    .expect("a setup problem stops the component at once");
    let err = outcome.expect_err("the setup is refused");
    assert!(err.is_permanent(), "{err}");
    err.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_without_a_primary_key_is_refused_naming_the_fix() {
    let f = Fixture::new(FieldTable::default()).await;
    f.pg.batch_execute(
        "CREATE TABLE shop.notes (body text); ALTER PUBLICATION sluice_cdc ADD TABLE shop.notes",
    )
    .await
    .unwrap();
    let err = refused(f.config.clone()).await;
    assert!(err.contains("table shop.notes"), "{err}");
    assert!(err.contains("ADD PRIMARY KEY"), "{err}");
    assert!(
        err.contains("ALTER PUBLICATION sluice_cdc DROP TABLE shop.notes"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publication_missing_a_table_is_refused_naming_the_fix() {
    let f = Fixture::new(FieldTable::default()).await;
    f.pg.batch_execute("ALTER PUBLICATION sluice_cdc DROP TABLE shop.order_status")
        .await
        .unwrap();
    let err = refused(f.config.clone()).await;
    assert!(err.contains("does not include shop.order_status"), "{err}");
    assert!(
        err.contains("ALTER PUBLICATION sluice_cdc ADD TABLE shop.order_status"),
        "{err}"
    );
    f.pg.batch_execute("DROP PUBLICATION sluice_cdc")
        .await
        .unwrap();
    let err = refused(f.config.clone()).await;
    assert!(
        err.contains("publication sluice_cdc does not exist"),
        "{err}"
    );
    assert!(
        err.contains("CREATE PUBLICATION sluice_cdc FOR TABLE shop.customers, shop.order_status"),
        "{err}"
    );
}

/// A slot dropped after its snapshot completed: the changes since are gone, so the component
/// refuses to carry on quietly and says how to start over; `cdc reset` then does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_slot_is_refused_until_reset() {
    let mut f = Fixture::new(FieldTable::default()).await;
    f.customers(0..3).await;
    let (task, stop) = spawn(f.config.clone());
    f.receive_until(Duration::from_secs(30), |r| r.len() >= 3)
        .await;
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    cdc::slot::wait_until_released(&f.pg, &f.config.slot, Duration::from_secs(10))
        .await
        .unwrap();
    f.pg.execute("SELECT pg_drop_replication_slot($1)", &[&f.config.slot])
        .await
        .unwrap();
    let err = refused(f.config.clone()).await;
    assert!(
        err.contains(&format!(
            "replication slot {} does not exist",
            f.config.slot
        )),
        "{err}"
    );
    assert!(err.contains("cdc reset"), "{err}");

    // The binary says the same, and exits non-zero; `cdc reset` starts over.
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_cdc"))
        .args([
            "--postgres-url",
            &f.config.postgres_url,
            "--amqp-url",
            &f.config.amqp_url,
        ])
        .args(["--exchange", &f.config.exchange, "--slot", &f.config.slot])
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("cdc reset"));
    let reset = std::process::Command::new(env!("CARGO_BIN_EXE_cdc"))
        .args([
            "--postgres-url",
            &f.config.postgres_url,
            "--slot",
            &f.config.slot,
        ])
        .args(["--amqp-url", &f.config.amqp_url, "reset"])
        .output()
        .unwrap();
    assert!(
        reset.status.success(),
        "{}",
        String::from_utf8_lossy(&reset.stderr)
    );
    f.received.clear();
    let (task, stop) = spawn(f.config.clone());
    f.receive_until(Duration::from_secs(30), |r| r.len() >= 3)
        .await;
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    assert!(
        f.received.iter().all(|e| change(e).op == "r"),
        "a new snapshot"
    );
}

/// A broker with no queue for the changes would confirm them and drop them: the component
/// publishes them `mandatory` and stops, naming the missing binding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_no_queue_takes_stop_the_component_naming_the_binding() {
    let f = Fixture::new(FieldTable::default()).await;
    f.customers(0..2).await;
    f.channel
        .queue_purge(f.queue.as_str().into(), QueuePurgeOptions::default())
        .await
        .unwrap();
    f.channel
        .queue_unbind(
            f.queue.as_str().into(),
            f.config.exchange.as_str().into(),
            "cdc.#".into(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let err = refused(f.config.clone()).await;
    assert!(err.contains("could not route cdc.shop.customers"), "{err}");
    assert!(
        cdc::slot::snapshot_record(&f.pg, &f.config.slot)
            .await
            .unwrap()
            .is_none(),
        "nothing recorded as done"
    );
}

/// While the published tables are quiet, other tables still grow the WAL: the heartbeats move
/// the slot's confirmed position past it, so the slot does not hold it back. Without them it
/// stays where the last change was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_move_a_quiet_slot_past_other_tables_wal() {
    let f = Fixture::new(FieldTable::default()).await;
    let mut config = f.config.clone();
    config.heartbeat = Some(Duration::from_millis(500));
    let (task, stop) = spawn(config);
    f.snapshot_recorded(Duration::from_secs(30)).await;
    f.pg.batch_execute(
        "CREATE TABLE public.noise (x text); \
         INSERT INTO public.noise SELECT repeat('x', 500) FROM generate_series(1, 20000)",
    )
    .await
    .unwrap();
    let after_noise: String =
        f.pg.query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await
            .unwrap()
            .get(0);
    let after_noise = pg_walstream::parse_lsn(&after_noise).unwrap();
    let confirmed = || f.confirmed_lsn();
    let deadline = Instant::now() + Duration::from_secs(30);
    while confirmed().await < after_noise {
        assert!(
            Instant::now() < deadline,
            "the slot stayed at {} while the WAL went to {after_noise} (10 MB of another table's rows)",
            confirmed().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = stop.send(());
    let metrics = task.await.unwrap().unwrap();
    assert!(metrics.heartbeats > 0, "{metrics:?}");
    assert_eq!(metrics.changes, 0, "a heartbeat publishes nothing");
}

/// `cdc setup` (what `cargo xtask up` runs) makes the slot while the published tables are
/// empty, with its empty snapshot recorded, so rows written before the first run reach it as
/// changes; on tables that already hold rows it makes nothing, and the first run snapshots them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_makes_the_slot_only_while_the_tables_are_empty() {
    let setup = |f: &Fixture| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cdc"))
            .args(["--postgres-url", &f.config.postgres_url])
            .args(["--amqp-url", &f.config.amqp_url])
            .args(["--slot", &f.config.slot, "setup"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        stderr
    };
    let mut empty = Fixture::new(FieldTable::default()).await;
    assert!(setup(&empty).contains("made slot"));
    assert!(
        cdc::slot::snapshot_record(&empty.pg, &empty.config.slot)
            .await
            .unwrap()
            .is_some()
    );
    assert!(setup(&empty).contains("no slot made"), "a second setup");
    empty.customers(0..3).await;
    let (task, stop) = spawn(empty.config.clone());
    empty
        .receive_until(Duration::from_secs(30), |r| r.len() >= 3)
        .await;
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    assert!(
        empty.received.iter().all(|e| change(e).op == "c"),
        "rows written after setup arrive as inserts, not as a snapshot's reads"
    );

    let full = Fixture::new(FieldTable::default()).await;
    full.customers(0..2).await;
    assert!(setup(&full).contains("no slot made"));
    assert!(
        cdc::slot::snapshot_record(&full.pg, &full.config.slot)
            .await
            .unwrap()
            .is_none()
    );
}
