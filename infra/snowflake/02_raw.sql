-- Raw landing tables: one row per loaded event, the canonical JSON kept whole as VARIANT.
CREATE TABLE IF NOT EXISTS SLUICE.RAW.EVENTS_STREAM (
    FILE_NAME STRING,
    LOADED_AT TIMESTAMP_NTZ,
    EVENT VARIANT
);
CREATE TABLE IF NOT EXISTS SLUICE.RAW.EVENTS_BACKFILL (
    SNAPSHOT_ID STRING,
    LOADED_AT TIMESTAMP_NTZ,
    EVENT VARIANT
);
-- The change log the cdc component captured from PostgreSQL (files under raw/source=cdc/): one
-- row per loaded row change, Debezium-shaped (op, before, after, source), as canonical JSON.
CREATE TABLE IF NOT EXISTS SLUICE.RAW.CDC_CHANGES (
    FILE_NAME STRING,
    LOADED_AT TIMESTAMP_NTZ,
    EVENT VARIANT
);
-- What the pipe has loaded: a key and ETag is loaded at most once.
CREATE TABLE IF NOT EXISTS SLUICE.RAW.LOAD_HISTORY (
    OBJECT_KEY STRING,
    ETAG STRING,
    ROWS_LOADED NUMBER(18, 0),
    STATUS STRING,
    ERROR STRING,
    LOADED_AT TIMESTAMP_NTZ
);
