//! "A new object exists": the S3 event-notification JSON the batcher publishes to SNS, and the
//! reader the pipe uses, which accepts it raw or inside an SNS envelope (as SNS -> SQS delivers
//! it without raw delivery), and recognises S3's `s3:TestEvent`.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::Deserialize;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectNotice {
    pub bucket: String,
    /// The key as stored (decoded).
    pub key: String,
    pub size: u64,
    pub etag: String,
    /// When the object was created, as the notification's `eventTime` says (millisecond
    /// precision); the pipe measures its hop from here.
    pub event_time: Option<chrono::DateTime<chrono::Utc>>,
}

/// What S3 leaves unescaped in notification keys.
const KEY_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Encodes a key the way S3 notifications do (`=` as `%3D`, space as `+`).
pub fn encode_key(key: &str) -> String {
    key.split(' ')
        .map(|part| utf8_percent_encode(part, KEY_SET).to_string())
        .collect::<Vec<_>>()
        .join("+")
}

/// Decodes a notification key: `+` is a space, then percent-decoding.
pub fn decode_key(key: &str) -> Result<String, NoticeError> {
    percent_decode_str(&key.replace('+', " "))
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|e| NoticeError(format!("key {key:?} is not UTF-8 after decoding: {e}")))
}

/// An S3 `ObjectCreated:Put` event for one object.
pub fn s3_event_json(notice: &ObjectNotice, event_time: chrono::DateTime<chrono::Utc>) -> String {
    serde_json::json!({
        "Records": [{
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "eventTime": event_time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "eventName": "ObjectCreated:Put",
            "s3": {
                "s3SchemaVersion": "1.0",
                "bucket": { "name": notice.bucket },
                "object": {
                    "key": encode_key(&notice.key),
                    "size": notice.size,
                    "eTag": notice.etag,
                }
            }
        }]
    })
    .to_string()
}

#[derive(Debug, PartialEq, Eq)]
pub enum Notification {
    Objects(Vec<ObjectNotice>),
    /// Sent by S3 when a notification configuration is created; carries no object.
    TestEvent,
}

#[derive(Debug, thiserror::Error)]
#[error("not an S3 notification: {0}")]
pub struct NoticeError(String);

#[derive(Deserialize)]
struct SnsEnvelope {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "Message")]
    message: String,
}

#[derive(Deserialize)]
struct S3Event {
    #[serde(rename = "Records", default)]
    records: Vec<S3Record>,
    #[serde(rename = "Event")]
    event: Option<String>,
}

#[derive(Deserialize)]
struct S3Record {
    #[serde(rename = "eventName", default)]
    event_name: String,
    #[serde(rename = "eventTime", default)]
    event_time: Option<String>,
    s3: S3Entity,
}

#[derive(Deserialize)]
struct S3Entity {
    bucket: S3Bucket,
    object: S3Object,
}

#[derive(Deserialize)]
struct S3Bucket {
    name: String,
}

#[derive(Deserialize)]
struct S3Object {
    key: String,
    #[serde(default)]
    size: u64,
    #[serde(rename = "eTag", default)]
    etag: String,
}

/// Parses a queue message body: an S3 event, raw or wrapped in an SNS notification.
pub fn parse_notification(body: &str) -> Result<Notification, NoticeError> {
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| NoticeError(format!("not JSON: {e}")))?;
    let inner = if value.get("Type").is_some() && value.get("Message").is_some() {
        let envelope: SnsEnvelope = serde_json::from_value(value)
            .map_err(|e| NoticeError(format!("bad SNS envelope: {e}")))?;
        if envelope.kind != "Notification" {
            return Err(NoticeError(format!(
                "SNS message of type {:?}",
                envelope.kind
            )));
        }
        serde_json::from_str(&envelope.message)
            .map_err(|e| NoticeError(format!("SNS Message is not JSON: {e}")))?
    } else {
        value
    };
    let event: S3Event =
        serde_json::from_value(inner).map_err(|e| NoticeError(format!("bad S3 event: {e}")))?;
    if event.event.as_deref() == Some("s3:TestEvent") {
        return Ok(Notification::TestEvent);
    }
    if event.records.is_empty() {
        return Err(NoticeError("no Records".into()));
    }
    let mut objects = Vec::new();
    for record in event.records {
        if !record.event_name.starts_with("ObjectCreated") {
            continue;
        }
        objects.push(ObjectNotice {
            bucket: record.s3.bucket.name,
            key: decode_key(&record.s3.object.key)?,
            size: record.s3.object.size,
            etag: record.s3.object.etag.trim_matches('"').to_owned(),
            event_time: record
                .event_time
                .as_deref()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&chrono::Utc)),
        });
    }
    Ok(Notification::Objects(objects))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(key: &str) -> ObjectNotice {
        ObjectNotice {
            bucket: "b".into(),
            key: key.into(),
            size: 10,
            etag: "abc".into(),
            event_time: None,
        }
    }

    #[test]
    fn raw_and_sns_wrapped_events_parse_to_the_decoded_key() {
        let mut n = notice("raw/source=orders/year=2026/month=01/day=02/a b.ndjson.gz");
        let at = chrono::DateTime::parse_from_rfc3339("2026-03-01T10:00:00.123Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let raw = s3_event_json(&n, at);
        n.event_time = Some(at);
        assert!(raw.contains("source%3Dorders"), "{raw}");
        assert!(raw.contains("a+b.ndjson.gz"), "{raw}");
        assert_eq!(
            parse_notification(&raw).unwrap(),
            Notification::Objects(vec![n.clone()])
        );
        let sns = serde_json::json!({"Type": "Notification", "MessageId": "x", "Message": raw})
            .to_string();
        assert_eq!(
            parse_notification(&sns).unwrap(),
            Notification::Objects(vec![n])
        );
    }

    #[test]
    fn test_events_are_recognised_and_junk_is_an_error() {
        let test = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"b"}"#;
        assert_eq!(parse_notification(test).unwrap(), Notification::TestEvent);
        assert!(parse_notification("hello").is_err());
        assert!(parse_notification("{}").is_err());
    }

    #[test]
    fn quoted_etags_are_unquoted() {
        let body = r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"k%2Bx","size":1,"eTag":"\"e1\""}}}]}"#;
        let Notification::Objects(objects) = parse_notification(body).unwrap() else {
            panic!()
        };
        assert_eq!(objects[0].key, "k+x");
        assert_eq!(objects[0].etag, "e1");
    }
}
