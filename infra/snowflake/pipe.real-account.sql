-- Real accounts only (fakesnow has no pipes): Snowpipe loading the raw files announced on the
-- bucket's event notifications. Needs an external stage on the raw bucket with a storage
-- integration, created by the account's administrators as SLUICE.RAW.RAW_BUCKET_STAGE.
CREATE PIPE IF NOT EXISTS SLUICE.RAW.EVENTS_PIPE AUTO_INGEST = TRUE AS
    COPY INTO SLUICE.RAW.EVENTS_STREAM (FILE_NAME, LOADED_AT, EVENT)
    FROM (SELECT METADATA$FILENAME, CURRENT_TIMESTAMP(), $1 FROM @SLUICE.RAW.RAW_BUCKET_STAGE)
    FILE_FORMAT = (FORMAT_NAME = 'SLUICE.RAW.NDJSON_GZ');
