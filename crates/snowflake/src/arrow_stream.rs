//! Reading an Arrow IPC stream message by message.
//!
//! `arrow_ipc::reader::StreamReader` would do, except that pyarrow-built results (fakesnow's,
//! and possibly other producers') declare struct children non-nullable while holding nulls in
//! them under a non-null parent row. The Python connector accepts that; arrow-rs rejects the
//! batch. Instead of switching validation off, the schema's struct children are declared
//! nullable before the batches are decoded, which keeps every other check.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_buffer::Buffer;
use arrow_ipc::MessageHeader;
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};

use crate::error::{Error, Result};

fn relax(field: &Field) -> Field {
    match field.data_type() {
        DataType::Struct(children) => {
            let children: Fields = children
                .iter()
                .map(|c| relax(c).with_nullable(true))
                .collect();
            field.clone().with_data_type(DataType::Struct(children))
        }
        _ => field.clone(),
    }
}

fn bad(what: impl std::fmt::Display) -> Error {
    Error::protocol(format!("Arrow rowset: {what}"))
}

fn read_i32(bytes: &[u8], at: usize) -> Option<i32> {
    bytes
        .get(at..at + 4)
        .map(|b| i32::from_le_bytes(b.try_into().expect("4 bytes")))
}

pub(crate) fn read(bytes: &[u8]) -> Result<Vec<RecordBatch>> {
    let buffer = Buffer::from(bytes.to_vec());
    let mut schema: Option<SchemaRef> = None;
    let mut dictionaries: HashMap<i64, ArrayRef> = HashMap::new();
    let mut batches = Vec::new();
    let mut at = 0;
    while let Some(mut length) = read_i32(bytes, at) {
        at += 4;
        if length == -1 {
            // Continuation marker, then the real length.
            length =
                read_i32(bytes, at).ok_or_else(|| bad("truncated after a continuation marker"))?;
            at += 4;
        }
        if length == 0 {
            break; // end of stream
        }
        let length = usize::try_from(length).map_err(|_| bad("negative message length"))?;
        let meta = bytes
            .get(at..at + length)
            .ok_or_else(|| bad("truncated message"))?;
        at += length;
        let message = arrow_ipc::root_as_message(meta).map_err(bad)?;
        let body_length =
            usize::try_from(message.bodyLength()).map_err(|_| bad("negative body length"))?;
        if at + body_length > bytes.len() {
            return Err(bad("truncated message body"));
        }
        let body = buffer.slice_with_length(at, body_length);
        at += body_length;
        match message.header_type() {
            MessageHeader::Schema => {
                let fb = message
                    .header_as_schema()
                    .ok_or_else(|| bad("schema message without a schema"))?;
                let declared = arrow_ipc::convert::try_fb_to_schema(fb).map_err(bad)?;
                let fields: Vec<Field> = declared.fields().iter().map(|f| relax(f)).collect();
                schema = Some(Arc::new(Schema::new_with_metadata(
                    fields,
                    declared.metadata().clone(),
                )));
            }
            MessageHeader::DictionaryBatch => {
                let schema = schema
                    .as_ref()
                    .ok_or_else(|| bad("dictionary before the schema"))?;
                let batch = message
                    .header_as_dictionary_batch()
                    .ok_or_else(|| bad("empty dictionary message"))?;
                arrow_ipc::reader::read_dictionary(
                    &body,
                    batch,
                    schema,
                    &mut dictionaries,
                    &message.version(),
                )
                .map_err(bad)?;
            }
            MessageHeader::RecordBatch => {
                let schema = schema
                    .clone()
                    .ok_or_else(|| bad("record batch before the schema"))?;
                let batch = message
                    .header_as_record_batch()
                    .ok_or_else(|| bad("empty record batch message"))?;
                batches.push(
                    arrow_ipc::reader::read_record_batch(
                        &body,
                        batch,
                        schema,
                        &dictionaries,
                        None,
                        &message.version(),
                    )
                    .map_err(bad)?,
                );
            }
            other => return Err(bad(format!("unexpected message {other:?}"))),
        }
    }
    Ok(batches)
}
