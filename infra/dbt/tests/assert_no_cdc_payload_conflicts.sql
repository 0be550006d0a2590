-- A change sent again keeps its id and its payload; an id with two payloads is a defect.
select event_id, load_count
from {{ ref('stg_cdc_changes') }}
where has_payload_conflict
