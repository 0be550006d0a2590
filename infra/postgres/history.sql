-- The operational history the backfill snapshots into RAW.EVENTS_BACKFILL.
CREATE SCHEMA IF NOT EXISTS history;
CREATE TABLE IF NOT EXISTS history.events (
    event_id     uuid PRIMARY KEY,
    source       text        NOT NULL,
    type         text        NOT NULL,
    occurred_at  timestamptz NOT NULL,
    produced_at  timestamptz NOT NULL,
    -- The canonical JSON of the whole event.
    event        jsonb       NOT NULL
);
CREATE INDEX IF NOT EXISTS events_occurred_at ON history.events (occurred_at);
