-- One row per captured row change: a change the cdc sent again after a restart keeps its
-- event id and is dropped here (the first load wins); one id with two payloads is flagged.
with loads as (
    select
        EVENT:event_id::string as event_id,
        EVENT:payload as payload,
        EVENT:occurred_at::timestamp_ntz as committed_at,
        md5(to_varchar(EVENT:payload)) as payload_fingerprint,
        FILE_NAME as file_name,
        LOADED_AT as loaded_at
    from {{ source('raw', 'CDC_CHANGES') }}
),

counted as (
    select
        *,
        count(*) over (partition by event_id) as load_count,
        count(distinct payload_fingerprint) over (partition by event_id) as fingerprint_count
    from loads
)

select
    event_id,
    payload:op::string as op,
    payload:table::string as table_name,
    payload:key as row_key,
    payload:before as before_row,
    payload:after as after_row,
    payload:source:slot::string as slot_name,
    payload:source:commit_lsn::number(20, 0) as commit_lsn,
    payload:source:change_lsn::number(20, 0) as change_lsn,
    payload:source:tx_id::number(10, 0) as tx_id,
    payload:source:tx_order::number(10, 0) as tx_order,
    payload:source:tx_size::number(10, 0) as tx_size,
    committed_at,
    loaded_at,
    load_count,
    fingerprint_count > 1 as has_payload_conflict
from counted
qualify row_number() over (partition by event_id order by loaded_at, file_name) = 1
