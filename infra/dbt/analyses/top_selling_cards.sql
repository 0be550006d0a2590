-- Top-selling cards: the ten cards with the most units sold on open (not cancelled) orders.
select
    o.card_id,
    c.sku,
    sum(o.quantity) as units_sold,
    sum(o.amount_cents) as revenue_cents
from {{ ref('fct_orders') }} as o
left join {{ ref('dim_card') }} as c
    on c.card_id = o.card_id
where not o.is_cancelled
group by o.card_id, c.sku
order by units_sold desc, o.card_id
limit 10
