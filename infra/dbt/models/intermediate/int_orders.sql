-- One row per order: its latest order event (same total order as int_cards).
select *
from {{ ref('stg_orders') }}
qualify row_number() over (
    partition by order_id
    order by occurred_at desc, produced_at desc, event_id desc
) = 1
