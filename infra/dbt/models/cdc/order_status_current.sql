-- shop.order_status as it is now: each order's latest change, unless that was a delete.
with latest as (
    select *
    from {{ ref('int_order_status_changes') }}
    {{ latest_change_per_key('order_id') }}
)

select order_id, status, updated_at
from latest
where op <> 'd'
