-- Units sold never exceed units produced: per card, good units produced (produced - defective)
-- less units sold on open orders; a negative headroom is a card sold beyond its stock.
with sold as (
    select card_id, sum(quantity) as units_sold
    from {{ ref('fct_orders') }}
    where not is_cancelled
    group by card_id
),

produced as (
    select card_id, sum(quantity_produced - quantity_defective) as good_units
    from {{ ref('fct_batch_performance') }}
    group by card_id
)

select
    coalesce(p.card_id, s.card_id) as card_id,
    coalesce(p.good_units, 0) - coalesce(s.units_sold, 0) as headroom,
    coalesce(s.units_sold, 0) as units_sold,
    coalesce(p.good_units, 0) as good_units
from produced as p
full outer join sold as s
    on s.card_id = p.card_id
order by card_id
