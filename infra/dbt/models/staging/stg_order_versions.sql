-- One row per event that states an order's lines: the order itself and every amendment.
-- Per order, the latest of these by event time holds (int_order_lines).
select
    event_id,
    event_type,
    occurred_at,
    produced_at,
    payload:order_id::string as order_id
from {{ ref('stg_events') }}
where event_type in ('order_created', 'order_amended')
