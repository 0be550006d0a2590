-- The same event_id loaded with different payloads is a data-quality failure, never a silent pick.
select event_id, load_count, payload_fingerprint
from {{ ref('stg_events') }}
where has_payload_conflict
