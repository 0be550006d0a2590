//! Objects are partitioned by source and by the UTC date of `occurred_at` (event time, so a late
//! event lands in the day it happened):
//! `<prefix>/source=<s>/year=YYYY/month=MM/day=DD/<content id>.<ext>`.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use events::{Event, Source};

use crate::FileFormat;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartitionKey {
    pub source: Source,
    pub date: NaiveDate,
}

/// The RAW table a file's events land in: row changes in their own change log, business events
/// together (as Snowpipe would with one pipe per table, split by the files' source prefix).
pub fn landing_table(source: Source) -> LandingTable {
    match source {
        Source::Cdc => LandingTable::CdcChanges,
        Source::Cards | Source::Orders | Source::Manufacturing => LandingTable::EventsStream,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LandingTable {
    EventsStream,
    CdcChanges,
}

impl LandingTable {
    pub const ALL: [LandingTable; 2] = [LandingTable::EventsStream, LandingTable::CdcChanges];

    /// Its name in the stack's database.
    pub const fn table(self) -> &'static str {
        match self {
            LandingTable::EventsStream => "SLUICE.RAW.EVENTS_STREAM",
            LandingTable::CdcChanges => "SLUICE.RAW.CDC_CHANGES",
        }
    }

    /// The partition folder that marks a file of this table, for SQL `LIKE`.
    const fn cdc_pattern() -> &'static str {
        "%/source=cdc/%"
    }

    /// A predicate on a file name (`column`) selecting this table's files.
    pub fn file_filter(self, column: &str) -> String {
        match self {
            LandingTable::CdcChanges => format!("{column} LIKE '{}'", Self::cdc_pattern()),
            LandingTable::EventsStream => format!("{column} NOT LIKE '{}'", Self::cdc_pattern()),
        }
    }
}

impl PartitionKey {
    pub fn of(event: &Event) -> Self {
        Self {
            source: event.source(),
            date: event.occurred_at().date_naive(),
        }
    }

    /// `<prefix>/source=<s>/year=YYYY/month=MM/day=DD`
    pub fn folder(&self, prefix: &str) -> String {
        format!(
            "{prefix}/source={}/year={:04}/month={:02}/day={:02}",
            self.source,
            self.date.year(),
            self.date.month(),
            self.date.day()
        )
    }

    /// The full key of an object in this partition.
    pub fn object_key(&self, prefix: &str, content_id: &str, format: FileFormat) -> String {
        format!(
            "{}/{content_id}.{}",
            self.folder(prefix),
            format.extension()
        )
    }

    /// Reads the partition back from an object key written by [`PartitionKey::object_key`].
    pub fn parse(key: &str) -> Option<Self> {
        let mut source = None;
        let (mut year, mut month, mut day) = (None, None, None);
        for part in key.split('/') {
            if let Some((name, value)) = part.split_once('=') {
                match name {
                    "source" => source = value.parse().ok(),
                    "year" => year = value.parse().ok(),
                    "month" => month = value.parse().ok(),
                    "day" => day = value.parse().ok(),
                    _ => {}
                }
            }
        }
        Some(Self {
            source: source?,
            date: NaiveDate::from_ymd_opt(year?, month?, day?)?,
        })
    }
}

/// Groups items by the partition of their event, keeping input order within each group.
pub fn partition<T>(
    items: impl IntoIterator<Item = (T, Event)>,
) -> BTreeMap<PartitionKey, Vec<(T, Event)>> {
    let mut groups: BTreeMap<PartitionKey, Vec<(T, Event)>> = BTreeMap::new();
    for (tag, event) in items {
        groups
            .entry(PartitionKey::of(&event))
            .or_default()
            .push((tag, event));
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let key = PartitionKey {
            source: Source::Orders,
            date: NaiveDate::from_ymd_opt(2026, 1, 2).unwrap(),
        };
        let object = key.object_key("raw", "abc", FileFormat::NdjsonGz);
        assert_eq!(
            object,
            "raw/source=orders/year=2026/month=01/day=02/abc.ndjson.gz"
        );
        assert_eq!(PartitionKey::parse(&object), Some(key));
        assert_eq!(PartitionKey::parse("raw/other/file"), None);
    }
}
