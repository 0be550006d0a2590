select
    event_id,
    occurred_at,
    produced_at,
    payload:order_id::string as order_id,
    payload:reason::string as reason
from {{ ref('stg_events') }}
where event_type = 'order_cancelled'
