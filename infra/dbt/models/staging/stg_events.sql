-- One row per event_id: the earliest load wins. An event_id loaded with more than one payload
-- fingerprint is flagged (has_payload_conflict) rather than silently resolved; the test
-- assert_no_payload_conflicts fails the build on any.
with loads as (
    select
        *,
        count(*) over (partition by event_id) as load_count,
        count(distinct payload_fingerprint) over (partition by event_id) as fingerprint_count
    from {{ ref('stg_event_loads') }}
)

select
    event_id,
    source,
    event_type,
    occurred_at,
    produced_at,
    schema_version,
    payload,
    payload_fingerprint,
    load_source,
    load_ref,
    loaded_at,
    load_count,
    fingerprint_count > 1 as has_payload_conflict
from loads
qualify row_number() over (
    partition by event_id
    order by loaded_at, load_source, load_ref
) = 1
