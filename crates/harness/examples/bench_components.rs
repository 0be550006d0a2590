//! Throughput of each ingestion component against a scratch native stack, and peak RSS of the
//! relay and batcher processes while a backlog drains.
//!
//! ```text
//! cargo build --release -p relay -p batcher --bins
//! cargo run --release -p harness --example bench_components -- --events 100000 --backlog 1000000
//! ```

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use clap::Parser;
use futures::StreamExt as _;
use harness::rig::publish::{Pacing, PublishConfig, publish};
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use stack::scratch::ScratchStack;

#[derive(Parser)]
struct Args {
    /// Events through relay (pack 100), batcher, pipe and backfill.
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Events through the relay with pack 1 (SQS-bound, so fewer).
    #[arg(long, default_value_t = 20_000)]
    events_pack1: u64,
    /// Backlog for the memory run (0 skips it).
    #[arg(long, default_value_t = 0)]
    backlog: u64,
    /// One-event files for the pipe's small-file run (0 skips it).
    #[arg(long, default_value_t = 2000)]
    small_files: u64,
}

fn scenario(events: u64) -> synth::Scenario {
    synth::Scenario::parse(
        "bench.toml",
        &format!(
            r#"name = "bench"
seed = 1
start = "2026-03-01T00:00:00Z"
duration = "1d"
max_events = {events}
[rates]
cards = 20
orders = 2000
manufacturing = 200
[history]
events = {events}
span = "30d"
"#
        ),
    )
    .unwrap()
}

async fn publish_unpaced(amqp: &str, n: u64, seed: u64) -> f64 {
    let mut config = PublishConfig::new(amqp);
    config.pacing = Pacing::Unpaced;
    let scenario = scenario(n);
    let report = publish(
        &config,
        synth::Generator::new(&scenario, Some(seed)).stream(),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(report.published, n);
    report.achieved_rate()
}

/// A plain lapin consumer of the three source queues: prefetch 1000, multiple-ack every 500.
async fn plain_consume(amqp: &str, n: u64) -> f64 {
    let conn = lapin::Connection::connect(amqp, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    channel
        .basic_qos(1000, BasicQosOptions::default())
        .await
        .unwrap();
    let mut consumers = Vec::new();
    for q in ["cards", "orders", "manufacturing"] {
        consumers.push(
            channel
                .basic_consume(
                    q.into(),
                    format!("plain-{q}").as_str().into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .unwrap(),
        );
    }
    let mut all = futures::stream::select_all(consumers);
    let started = Instant::now();
    let (mut got, mut max_tag, mut acked) = (0u64, 0u64, 0u64);
    while got < n {
        let d = all.next().await.unwrap().unwrap();
        got += 1;
        // The three consumers' streams interleave, so tags arrive out of order: ack the
        // highest seen, never one at or below an earlier multiple-ack.
        max_tag = max_tag.max(d.delivery_tag);
        if (got % 500 == 0 || got == n) && max_tag > acked {
            channel
                .basic_ack(max_tag, BasicAckOptions { multiple: true })
                .await
                .unwrap();
            acked = max_tag;
        }
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    drop(all);
    conn.close(200, "done".into()).await.unwrap();
    rate
}

async fn create_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> String {
    sqs.create_queue()
        .queue_name(name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap()
}

async fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(1800);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: timed out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn relay_run(
    stack: &ScratchStack,
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    pack: usize,
    n: u64,
) -> f64 {
    let metrics = Arc::new(relay::Metrics::default());
    let base = relay::RelayConfig::from_stack(&stack.state).unwrap();
    let prefetch = relay::RelayConfig::auto_prefetch(pack, base.max_in_flight);
    let config = relay::RelayConfig {
        pack,
        prefetch,
        sqs_queue_url: queue_url.into(),
        ..base
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let task = tokio::spawn(relay::run(
        config,
        sqs.clone(),
        metrics.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    wait_for("relay", || metrics.acked.load(Relaxed) >= n).await;
    let rate = n as f64 / started.elapsed().as_secs_f64();
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
    rate
}

/// Peak resident set (VmHWM) of a process, in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU seconds (user + system) a process has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| {
        f.iter().filter_map(|v| v.parse::<f64>().ok()).sum()
    });
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

fn metric(path: &std::path::Path, key: &str) -> u64 {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v[key].as_u64())
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    let stack = ScratchStack::shared().await;
    // Ctrl-C or SIGTERM still takes the scratch stack down (when `stack` drops).
    tokio::select! {
        () = bench(&args, &stack) => {}
        () = runtime::shutdown_signal() => eprintln!("interrupted"),
    }
}

async fn bench(args: &Args, stack: &ScratchStack) {
    let amqp = stack.state.rabbitmq.amqp_url.clone();
    let sdk = runtime::aws::sdk_config(&stack.state.aws).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let n = args.events;
    println!("# components on a scratch native stack, {n} events");

    let publish_rate = publish_unpaced(&amqp, n, 1).await;
    let plain = plain_consume(&amqp, n).await;
    println!("publish (confirms, unpaced)   {publish_rate:>10.0} events/s");
    println!("plain lapin consumer          {plain:>10.0} events/s");

    let q1 = create_queue(&sqs, "bench-pack1").await;
    publish_unpaced(&amqp, args.events_pack1, 2).await;
    let r1 = relay_run(stack, &sqs, &q1, 1, args.events_pack1).await;
    println!(
        "relay pack=1                  {r1:>10.0} events/s  ({:.2} of plain)",
        r1 / plain
    );

    let q100 = create_queue(&sqs, "bench-pack100").await;
    publish_unpaced(&amqp, n, 3).await;
    let r100 = relay_run(stack, &sqs, &q100, 100, n).await;
    println!(
        "relay pack=100                {r100:>10.0} events/s  ({:.2} of plain)",
        r100 / plain
    );

    // Batcher: the pack=100 queue, objects announced on a topic the pipe's queue follows.
    let sns = aws_sdk_sns::Client::new(&sdk);
    let topic = sns
        .create_topic()
        .name("bench-raw-files")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let notify = create_queue(&sqs, "bench-notify").await;
    let notify_arn = sqs
        .get_queue_attributes()
        .queue_url(&notify)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(notify_arn)
        .send()
        .await
        .unwrap();
    let bucket = stack.output("BucketName").to_owned();
    let metrics = Arc::new(batcher::Metrics::default());
    let handler = Arc::new(batcher::Handler::new(
        batcher::sink::AwsSink::new(&sdk, bucket.clone(), topic.clone()),
        batcher::handler::HandlerConfig {
            format: batcher::FileFormat::NdjsonGz,
            key_prefix: "bench".into(),
            fault: batcher::Fault::None,
        },
        metrics.clone(),
    ));
    let config = batcher::BatcherConfig {
        queue_url: q100.clone(),
        bucket: bucket.clone(),
        topic_arn: topic.clone(),
        key_prefix: "bench".into(),
        batch_size: 100,
        batch_window: Duration::from_millis(200),
        ..batcher::BatcherConfig::defaults()
    };
    let started = Instant::now();
    let m = metrics.clone();
    let snapshot =
        batcher::poller::run(config, sqs.clone(), handler, metrics.clone(), async move {
            wait_for("batcher", || {
                m.events_written.load(Relaxed) >= n && m.deleted_records.load(Relaxed) >= n / 100
            })
            .await
        })
        .await
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "batcher (pack=100 messages)   {:>10.0} events/s  {:.1} MB/s gzipped NDJSON, {} objects",
        snapshot.events_written as f64 / secs,
        snapshot.bytes_written as f64 / secs / 1e6,
        snapshot.objects_written
    );

    // Pipe: every object the batcher announced.
    let s3 = rawfiles::s3_client(&sdk);
    let sf =
        snowflake::Client::connect(snowflake::Config::from_state(&stack.state.snowflake).unwrap())
            .await
            .unwrap();
    let loader = pipe::Loader::new(sf, s3).await.unwrap();
    let pm = Arc::new(pipe::Metrics::default());
    let started = Instant::now();
    let objects = snapshot.objects_written;
    let m = pm.clone();
    let poller = pipe::poller::PollerConfig::new(notify.clone());
    let ps = pipe::poller::run(&poller, &sqs, &loader, &pm, async move {
        wait_for("pipe", || {
            m.files_loaded.load(Relaxed) + m.files_skipped.load(Relaxed) >= objects
        })
        .await
    })
    .await
    .unwrap();
    loader.close().await;
    println!(
        "pipe                          {:>10.0} rows/s  ({} files)",
        ps.rows_loaded as f64 / started.elapsed().as_secs_f64(),
        ps.files_loaded
    );

    if args.small_files > 0 {
        let rate = pipe_small_files(stack, &sdk, &sqs, &bucket, args.small_files).await;
        println!(
            "pipe, one-event files         {rate:>10.0} files/s  ({} files, notified in a backlog)",
            args.small_files
        );
    }

    // Backfill.
    let (mut pg, conn) = tokio_postgres::connect(&stack.state.postgres.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let history: Vec<events::Event> = synth::Generator::new(&scenario(n), Some(4))
        .history()
        .collect();
    let started = Instant::now();
    let h = backfill::history::load(&mut pg, history).await.unwrap();
    println!(
        "backfill history (COPY)       {:>10.0} rows/s",
        h.inserted as f64 / started.elapsed().as_secs_f64()
    );
    let sf =
        snowflake::Client::connect(snowflake::Config::from_state(&stack.state.snowflake).unwrap())
            .await
            .unwrap();
    let started = Instant::now();
    let s = backfill::snapshot::copy(&pg, &sf, &backfill::snapshot::SnapshotConfig::default())
        .await
        .unwrap();
    println!(
        "backfill snapshot (PUT+COPY)  {:>10.0} rows/s",
        s.inserted as f64 / started.elapsed().as_secs_f64()
    );

    if args.backlog > 0 {
        backlog(stack, &sqs, &amqp, args.backlog).await;
    }
}

/// A backlog drained by the relay and batcher binaries, sampling their peak RSS.
async fn backlog(stack: &ScratchStack, sqs: &aws_sdk_sqs::Client, amqp: &str, n: u64) {
    let bin = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let dir = std::env::temp_dir().join(format!("sluice-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let started = Instant::now();
    let rate = publish_unpaced(amqp, n, 5).await;
    println!(
        "backlog: {n} events published in {:.0} s ({rate:.0}/s)",
        started.elapsed().as_secs_f64()
    );
    let queue = create_queue(sqs, "bench-backlog").await;
    let endpoint = stack.state.aws.endpoint_url.clone().unwrap();
    let run = |name: &str, extra: &[&str], done_key: &str, done_at: u64| {
        let metrics = dir.join(format!("{name}.json"));
        let mut child = std::process::Command::new(bin.join(name))
            .args(extra)
            .args(["--aws-endpoint-url", &endpoint])
            .arg("--metrics-file")
            .arg(&metrics)
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{name}: {e} (build it first: cargo build --release -p {name} --bins)")
            });
        let started = Instant::now();
        let mut peak: f64 = 0.0;
        while metric(&metrics, done_key) < done_at {
            peak = peak.max(peak_rss_mib(child.id()));
            assert!(child.try_wait().unwrap().is_none(), "{name} exited early");
            std::thread::sleep(Duration::from_millis(200));
        }
        peak = peak.max(peak_rss_mib(child.id()));
        let secs = started.elapsed().as_secs_f64();
        let cpu = cpu_seconds(child.id());
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        child.wait().unwrap();
        println!(
            "{name:<8} drained {n} events in {secs:.1} s ({:.0}/s), peak RSS {peak:.0} MiB, CPU {cpu:.1} s ({:.2} cores)",
            n as f64 / secs,
            cpu / secs
        );
    };
    run(
        "relay",
        &[
            "--amqp-url",
            amqp,
            "--sqs-queue-url",
            &queue,
            "--pack",
            "100",
        ],
        "acked",
        n,
    );
    let bucket = stack.output("BucketName").to_owned();
    let topic = stack.output("RawFilesTopicArn").to_owned();
    run(
        "batcher",
        &[
            "--queue-url",
            &queue,
            "--bucket",
            &bucket,
            "--topic-arn",
            &topic,
            "--key-prefix",
            "backlog",
            "--batch-size",
            "100",
        ],
        "events_written",
        n,
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The pipe against a backlog of one-event files: the Snowpipe worst case (one file per event),
/// where each file used to cost a PUT, a COPY and an INSERT of its own.
async fn pipe_small_files(
    stack: &ScratchStack,
    sdk: &aws_config::SdkConfig,
    sqs: &aws_sdk_sqs::Client,
    bucket: &str,
    n: u64,
) -> f64 {
    use std::io::Write as _;
    let s3 = rawfiles::s3_client(sdk);
    let notify = create_queue(sqs, "bench-small-notify").await;
    let events: Vec<events::Event> = synth::Generator::new(&scenario(n), Some(9))
        .first_events()
        .take(n as usize)
        .collect();
    let notices: Vec<rawfiles::ObjectNotice> = futures::stream::iter(events.iter().enumerate())
        .map(|(i, e)| {
            let s3 = s3.clone();
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(format!("{}\n", e.to_canonical_json()).as_bytes())
                .unwrap();
            let body = gz.finish().unwrap();
            let key = format!("bench-small/source=orders/year=2026/month=03/day=01/{i}.ndjson.gz");
            async move {
                let size = body.len() as u64;
                let out = s3
                    .put_object()
                    .bucket(bucket)
                    .key(&key)
                    .body(body.into())
                    .send()
                    .await
                    .unwrap();
                rawfiles::ObjectNotice {
                    bucket: bucket.to_owned(),
                    key,
                    size,
                    etag: out.e_tag().unwrap_or_default().trim_matches('"').to_owned(),
                    event_time: Some(chrono::Utc::now()),
                }
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    for chunk in notices.chunks(10) {
        let entries: Vec<_> = chunk
            .iter()
            .enumerate()
            .map(|(i, n)| {
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(rawfiles::notice::s3_event_json(n, chrono::Utc::now()))
                    .build()
                    .unwrap()
            })
            .collect();
        sqs.send_message_batch()
            .queue_url(&notify)
            .set_entries(Some(entries))
            .send()
            .await
            .unwrap();
    }
    let sf =
        snowflake::Client::connect(snowflake::Config::from_state(&stack.state.snowflake).unwrap())
            .await
            .unwrap();
    let loader = pipe::Loader::new(sf, s3).await.unwrap();
    let pm = Arc::new(pipe::Metrics::default());
    let m = pm.clone();
    let started = Instant::now();
    let poller = pipe::poller::PollerConfig::new(notify.clone());
    let ps = pipe::poller::run(&poller, sqs, &loader, &pm, async move {
        wait_for("pipe (small files)", || {
            m.files_loaded.load(Relaxed) + m.files_skipped.load(Relaxed) >= n
        })
        .await
    })
    .await
    .unwrap();
    let rate = ps.files_loaded as f64 / started.elapsed().as_secs_f64();
    eprintln!(
        "  ({} loads, {:.0} files each)",
        ps.loads,
        ps.files_loaded as f64 / ps.loads.max(1) as f64
    );
    loader.close().await;
    rate
}
