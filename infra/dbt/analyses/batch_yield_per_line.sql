-- Batch yield and defect rate per line: each factory's produced/planned and defective/produced
-- over all its batches.
select
    factory,
    sum(quantity_produced) / nullif(sum(quantity_planned), 0) as yield_rate,
    sum(quantity_defective) / nullif(sum(quantity_produced), 0) as defect_rate,
    count(*) as batches
from {{ ref('fct_batch_performance') }}
group by factory
order by factory
