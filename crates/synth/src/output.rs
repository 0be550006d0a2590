//! Writing a scenario's events to a file or pipe, without any service (`cargo xtask gen`).

use std::io::{self, Write};

use crate::{Body, Generator};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Canonical JSON, one event per line. Poison bodies have no JSON form and are left out.
    Ndjson,
    /// Length-delimited protobuf bodies, exactly as published, poison included.
    Proto,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    History,
    Stream,
    All,
}

/// What was written.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Written {
    pub history: u64,
    pub stream_events: u64,
    pub duplicates: u64,
    pub poison: u64,
    /// Poison bodies that the format cannot carry.
    pub poison_left_out: u64,
    pub bytes: u64,
}

pub fn write(
    generator: &mut Generator,
    format: Format,
    part: Part,
    out: &mut impl Write,
) -> io::Result<Written> {
    let mut written = Written::default();
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut flush = |buf: &mut Vec<u8>, written: &mut Written, force: bool| -> io::Result<()> {
        if force || buf.len() >= 60 * 1024 {
            out.write_all(buf)?;
            written.bytes += buf.len() as u64;
            buf.clear();
        }
        Ok(())
    };
    if matches!(part, Part::History | Part::All) {
        for event in generator.history() {
            match format {
                Format::Ndjson => {
                    event.write_canonical_json(&mut buf);
                    buf.push(b'\n');
                }
                Format::Proto => event.encode_length_delimited_into(&mut buf),
            }
            written.history += 1;
            flush(&mut buf, &mut written, false)?;
        }
    }
    if matches!(part, Part::Stream | Part::All) {
        for emission in generator.stream() {
            match &emission.body {
                Body::Event(_) => written.stream_events += 1,
                Body::Duplicate(_) => written.duplicates += 1,
                Body::Poison(_) => written.poison += 1,
            }
            match (format, &emission.body) {
                (Format::Ndjson, Body::Poison(_)) => written.poison_left_out += 1,
                (Format::Ndjson, Body::Event(e) | Body::Duplicate(e)) => {
                    e.write_canonical_json(&mut buf);
                    buf.push(b'\n');
                }
                (Format::Proto, Body::Event(e) | Body::Duplicate(e)) => {
                    e.encode_length_delimited_into(&mut buf)
                }
                (Format::Proto, Body::Poison(p)) => {
                    prost::encoding::encode_varint(p.bytes.len() as u64, &mut buf);
                    buf.extend_from_slice(&p.bytes);
                }
            }
            flush(&mut buf, &mut written, false)?;
        }
    }
    flush(&mut buf, &mut written, true)?;
    out.flush()?;
    Ok(written)
}
