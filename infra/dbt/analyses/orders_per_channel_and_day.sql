-- Orders per channel and day: open orders and their amount, by order date and sales channel.
select
    ordered_date,
    channel,
    count(distinct order_id) as orders,
    sum(amount_cents) as amount_cents
from {{ ref('fct_orders') }}
where not is_cancelled
group by ordered_date, channel
order by ordered_date, channel
