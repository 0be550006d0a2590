-- One row per order: its latest order event.
select *
from {{ ref('stg_orders') }}
{{ latest_per_key('order_id') }}
