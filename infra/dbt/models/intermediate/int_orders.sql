-- One row per order: the header of its order_created event.
select *
from {{ ref('stg_orders') }}
{{ latest_per_key('order_id') }}
