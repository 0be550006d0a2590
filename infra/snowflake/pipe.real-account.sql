-- Real accounts only (fakesnow has no pipes): Snowpipe loading the raw files announced on the
-- bucket's event notifications. Needs an external stage on the raw bucket with a storage
-- integration, created by the account's administrators as SLUICE.RAW.RAW_BUCKET_STAGE.
-- One pipe per landing table, split by the files' source partition, as the emulated pipe does.
CREATE PIPE IF NOT EXISTS SLUICE.RAW.EVENTS_PIPE AUTO_INGEST = TRUE AS
    COPY INTO SLUICE.RAW.EVENTS_STREAM (FILE_NAME, LOADED_AT, EVENT)
    FROM (SELECT METADATA$FILENAME, CURRENT_TIMESTAMP(), $1 FROM @SLUICE.RAW.RAW_BUCKET_STAGE)
    PATTERN = '.*source=(cards|orders|manufacturing)/.*'
    FILE_FORMAT = (FORMAT_NAME = 'SLUICE.RAW.NDJSON_GZ');
CREATE PIPE IF NOT EXISTS SLUICE.RAW.CDC_PIPE AUTO_INGEST = TRUE AS
    COPY INTO SLUICE.RAW.CDC_CHANGES (FILE_NAME, LOADED_AT, EVENT)
    FROM (SELECT METADATA$FILENAME, CURRENT_TIMESTAMP(), $1 FROM @SLUICE.RAW.RAW_BUCKET_STAGE)
    PATTERN = '.*source=cdc/.*'
    FILE_FORMAT = (FORMAT_NAME = 'SLUICE.RAW.NDJSON_GZ');
