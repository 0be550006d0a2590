//! serde adapter for JSON carried as text in protobuf (a row change's key and row images): in
//! canonical JSON it is the embedded object itself, or `null` for the empty string, so the
//! warehouse reads `payload:after:country` without a second parse.
//!
//! The text form is canonical too: serde_json's maps keep keys sorted and print no whitespace, so
//! text -> value -> text is the identity for any text [`canonical`] accepts, and fingerprints of
//! a payload read back from a warehouse match the original's.

use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub fn serialize<S: Serializer>(text: &str, s: S) -> Result<S::Ok, S::Error> {
    if text.is_empty() {
        return s.serialize_none();
    }
    let value: serde_json::Value = serde_json::from_str(text).map_err(S::Error::custom)?;
    value.serialize(s)
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => Ok(String::new()),
        value @ serde_json::Value::Object(_) => Ok(value.to_string()),
        other => Err(D::Error::custom(format!(
            "expected a JSON object or null, got {other}"
        ))),
    }
}

/// The canonical text of a JSON object (sorted keys, no whitespace), or why `text` is not one.
pub fn canonical(text: &str) -> Result<String, String> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value @ serde_json::Value::Object(_)) => Ok(value.to_string()),
        Ok(other) => Err(format!("{other} is not a JSON object")),
        Err(e) => Err(format!("not JSON: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::canonical;

    #[test]
    fn canonical_text_sorts_keys_and_drops_whitespace() {
        assert_eq!(
            canonical(r#"{ "b": 1, "a": {"z": null, "y": "x"} }"#).unwrap(),
            r#"{"a":{"y":"x","z":null},"b":1}"#
        );
        assert!(canonical("[1]").unwrap_err().contains("not a JSON object"));
        assert!(canonical("{").unwrap_err().contains("not JSON"));
    }
}
