-- One row per order line: the lines of each order's latest event, with the order's header.
select
    o.order_id,
    l.line_number,
    l.card_id,
    o.customer_id,
    o.channel,
    o.ship_country,
    l.quantity,
    l.unit_price_cents,
    o.ordered_at
from {{ ref('int_orders') }} as o
inner join {{ ref('stg_order_lines') }} as l
    on l.event_id = o.event_id
