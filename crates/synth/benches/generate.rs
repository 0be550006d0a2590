//! Generate + encode throughput, single-threaded: `cargo bench -p synth --bench generate`.
//! Goal: at least 1,000,000 events/s for protobuf on one core.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use synth::{Body, Generator, Scenario};

const EVENTS: u64 = 200_000;

fn scenario() -> Scenario {
    let mut s = Scenario::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scenarios/steady.toml"
    ))
    .unwrap();
    s.duration = None;
    s.max_events = Some(EVENTS);
    s.history.events = 0;
    s
}

fn bench(c: &mut Criterion) {
    let s = scenario();
    let mut group = c.benchmark_group("generate");
    group.throughput(Throughput::Elements(EVENTS));
    group.sample_size(10);

    group.bench_function("events_only", |b| {
        b.iter(|| Generator::new(&s, None).stream().count());
    });
    group.bench_function("protobuf", |b| {
        let mut buf = Vec::with_capacity(1 << 20);
        b.iter(|| {
            let mut bytes = 0;
            for emission in Generator::new(&s, None).stream() {
                if let Body::Event(e) | Body::Duplicate(e) = &emission.body {
                    buf.clear();
                    e.encode_into(&mut buf);
                    bytes += buf.len();
                }
            }
            bytes
        });
    });
    group.bench_function("canonical_json", |b| {
        let mut buf = Vec::with_capacity(1 << 20);
        b.iter(|| {
            let mut bytes = 0;
            for emission in Generator::new(&s, None).stream() {
                if let Body::Event(e) | Body::Duplicate(e) = &emission.body {
                    buf.clear();
                    e.write_canonical_json(&mut buf);
                    bytes += buf.len();
                }
            }
            bytes
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
