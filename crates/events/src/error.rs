/// Why a body or a JSON document is not a valid event under the contract.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    #[error("not a protobuf Envelope: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("not a canonical JSON event: {0}")]
    Json(#[from] serde_json::Error),
    #[error("required field `{0}` is missing")]
    Missing(&'static str),
    #[error("field `{field}` is invalid: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("unknown source {0:?} (expected cards, orders, manufacturing or cdc)")]
    UnknownSource(String),
    #[error(
        "unknown event type {0:?} (expected card_catalog_created, order_created, order_amended, order_cancelled, manufacturing_batch or row_change)"
    )]
    UnknownType(String),
    #[error("envelope says {field} {envelope:?} but the payload is a {payload} event")]
    Mismatch {
        field: &'static str,
        envelope: String,
        payload: &'static str,
    },
    #[error("schema_version {0} is not supported (this build reads version {supported})", supported = crate::SCHEMA_VERSION)]
    UnsupportedSchemaVersion(u32),
}

impl ContractError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }
}
