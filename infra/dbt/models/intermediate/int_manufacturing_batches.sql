-- One row per manufacturing batch: its latest event.
select *
from {{ ref('stg_manufacturing_batches') }}
{{ latest_per_key('batch_id') }}
