-- One row per cancelled order: its latest cancellation. Cancellation is terminal: a cancelled
-- order stays cancelled whatever its later amendments say.
select *
from {{ ref('stg_order_cancellations') }}
{{ latest_per_key('order_id') }}
