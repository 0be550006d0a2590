-- Every load of every event, from both landing tables, with the envelope parsed. An event
-- appears here once per time it was loaded (redeliveries, duplicate files, backfill overlap).
with stream as (
    select 'stream' as load_source, FILE_NAME as load_ref, LOADED_AT as loaded_at, EVENT as event
    from {{ source('raw', 'EVENTS_STREAM') }}
),

backfill as (
    select 'backfill' as load_source, SNAPSHOT_ID as load_ref, LOADED_AT as loaded_at, EVENT as event
    from {{ source('raw', 'EVENTS_BACKFILL') }}
),

loads as (
    select * from stream
    union all
    select * from backfill
)

select
    event:event_id::string as event_id,
    event:source::string as source,
    event:type::string as event_type,
    event:occurred_at::timestamp_ntz as occurred_at,
    event:produced_at::timestamp_ntz as produced_at,
    event:schema_version::int as schema_version,
    event:payload as payload,
    -- Canonical JSON is written with a fixed key order, so equal payloads give equal text.
    md5(to_varchar(event:payload)) as payload_fingerprint,
    load_source,
    load_ref,
    loaded_at
from loads
