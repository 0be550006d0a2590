-- One row per order_created event: the order's header. Amendments restate lines only.
select
    event_id,
    occurred_at,
    produced_at,
    payload:order_id::string as order_id,
    payload:customer_id::string as customer_id,
    payload:channel::string as channel,
    payload:ship_country::string as ship_country,
    payload:ordered_at::timestamp_ntz as ordered_at
from {{ ref('stg_events') }}
where event_type = 'order_created'
