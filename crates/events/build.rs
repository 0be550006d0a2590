//! Compiles `proto/events.proto` with protox (pure Rust: no `protoc` on the machine) and
//! prost-build. Payload messages also derive serde, which is how their canonical JSON is written;
//! timestamps go through `crate::timestamp` so they appear as RFC 3339 UTC strings.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time, not with env!(): one build-script binary may serve checkouts at other
    // paths that share a target dir (CI clones into a fresh folder each time).
    let proto_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let proto = proto_dir.join("events.proto");
    println!("cargo:rerun-if-changed={}", proto.display());

    let descriptors = protox::compile([&proto], [&proto_dir])?;

    let serde_derive =
        "#[derive(serde::Serialize, serde::Deserialize)] #[serde(deny_unknown_fields)]";
    let timestamp = "#[serde(with = \"crate::timestamp::required\")]";
    let mut config = prost_build::Config::new();
    for message in [
        "CardCatalogCreated",
        "OrderCreated",
        "OrderLine",
        "OrderAmended",
        "OrderCancelled",
        "ManufacturingBatch",
        "RowChange",
        "ChangeSource",
    ] {
        config.type_attribute(format!(".sluice.events.v1.{message}"), serde_derive);
    }
    for field in [
        "OrderCreated.ordered_at",
        "ManufacturingBatch.started_at",
        "ManufacturingBatch.completed_at",
        "ChangeSource.commit_time",
    ] {
        config.field_attribute(format!(".sluice.events.v1.{field}"), timestamp);
    }
    // Row images travel as JSON text in protobuf and as embedded objects in canonical JSON.
    let json_text = "#[serde(with = \"crate::json_text\")]";
    for field in ["RowChange.key", "RowChange.before", "RowChange.after"] {
        config.field_attribute(format!(".sluice.events.v1.{field}"), json_text);
    }
    config.compile_fds(descriptors)?;
    Ok(())
}
