-- One row per manufacturing batch: its latest event (same total order as int_cards).
select *
from {{ ref('stg_manufacturing_batches') }}
qualify row_number() over (
    partition by batch_id
    order by occurred_at desc, produced_at desc, event_id desc
) = 1
