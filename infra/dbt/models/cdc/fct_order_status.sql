-- Grain: order, as the operational database tracks its fulfilment, joined to what the order
-- events say it holds (null where the warehouse has no order event for it).
with orders as (
    select
        order_id,
        customer_id,
        is_cancelled,
        count(*) as lines,
        sum(quantity) as units,
        sum(amount_cents) as amount_cents
    from {{ ref('fct_orders') }}
    group by order_id, customer_id, is_cancelled
)

select
    s.order_id,
    s.status,
    s.updated_at as status_updated_at,
    o.customer_id,
    o.lines,
    o.units,
    o.amount_cents,
    o.is_cancelled as cancelled_by_event
from {{ ref('order_status_current') }} as s
left join orders as o
    on o.order_id = s.order_id
