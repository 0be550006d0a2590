-- One row per order line: the lines of the order's latest order or amendment event (by event
-- time, whatever order they arrived in), with the order's header and its cancellation.
with latest_lines as (
    select order_id, event_id
    from {{ ref('stg_order_versions') }}
    {{ latest_per_key('order_id') }}
)

select
    o.order_id,
    l.line_number,
    l.card_id,
    o.customer_id,
    o.channel,
    o.ship_country,
    l.quantity,
    l.unit_price_cents,
    o.ordered_at,
    c.order_id is not null as is_cancelled,
    c.occurred_at as cancelled_at
from {{ ref('int_orders') }} as o
inner join latest_lines as v
    on v.order_id = o.order_id
inner join {{ ref('stg_order_lines') }} as l
    on l.event_id = v.event_id
left join {{ ref('int_order_cancellations') }} as c
    on c.order_id = o.order_id
