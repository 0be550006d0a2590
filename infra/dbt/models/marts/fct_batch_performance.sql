-- Grain: manufacturing batch. Rates are unrounded ratios (the oracle compares them to 1e-6);
-- duration in hours from the batch's start and completion times.
select
    batch_id,
    card_id,
    factory,
    quantity_planned,
    quantity_produced,
    quantity_defective,
    quantity_produced / nullif(quantity_planned, 0) as yield_rate,
    quantity_defective / nullif(quantity_produced, 0) as defect_rate,
    datediff('second', started_at, completed_at) / 3600 as duration_hours,
    completed_at,
    completed_at::date as completed_date
from {{ ref('int_manufacturing_batches') }}
