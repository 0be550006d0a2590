//! The JSON shapes of the connector protocol. Only what this client reads is declared; unknown
//! fields are ignored, since Snowflake adds fields freely.

use std::collections::HashMap;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub(crate) struct Envelope<T> {
    pub data: Option<T>,
    pub code: Option<String>,
    pub message: Option<String>,
    #[serde(default)]
    pub success: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LoginData {
    pub token: String,
    pub master_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RenewData {
    pub session_token: String,
    pub master_token: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct RowType {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub scale: Option<i64>,
    pub precision: Option<i64>,
    #[serde(default = "yes")]
    pub nullable: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Chunk {
    pub url: String,
    pub row_count: u64,
}

/// `data` of a query answer: a result, an error's details, a PUT's stage, or "still running".
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct QueryData {
    #[serde(default)]
    pub rowtype: Vec<RowType>,
    pub rowset: Option<Vec<Vec<Option<String>>>>,
    pub rowset_base64: Option<String>,
    pub query_result_format: Option<String>,
    pub total: Option<u64>,
    pub query_id: Option<String>,
    pub statement_type_id: Option<i64>,
    #[serde(default)]
    pub chunks: Vec<Chunk>,
    pub chunk_headers: Option<HashMap<String, String>>,
    pub qrmk: Option<String>,
    pub get_result_url: Option<String>,
    pub sql_state: Option<String>,
    pub error_code: Option<String>,
    // PUT / GET
    pub command: Option<String>,
    pub stage_info: Option<StageInfo>,
    pub encryption_material: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StageInfo {
    pub location_type: String,
    #[serde(default)]
    pub location: String,
    pub presigned_url: Option<String>,
}
