-- The manufacturing contract: defective <= produced <= planned.
select batch_id, quantity_planned, quantity_produced, quantity_defective
from {{ ref('fct_batch_performance') }}
where quantity_produced > quantity_planned
   or quantity_defective > quantity_produced
