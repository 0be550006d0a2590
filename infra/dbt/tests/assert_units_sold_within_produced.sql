-- Per card, units of open (not cancelled) orders never exceed good units produced (produced -
-- defective), both as their latest events state them. Only holds for supply-constrained
-- scenarios; the harness sets the var from the scenario.
{{ config(enabled = var('supply_constrained', true)) }}

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

select s.card_id, s.units_sold, coalesce(p.good_units, 0) as good_units
from sold as s
left join produced as p on p.card_id = s.card_id
where s.units_sold > coalesce(p.good_units, 0)
