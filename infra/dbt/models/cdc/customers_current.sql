-- shop.customers as it is now: each customer's latest change, unless that was a delete.
with latest as (
    select *
    from {{ ref('int_customer_changes') }}
    {{ latest_change_per_key('customer_id') }}
)

select customer_id, name, email, country, tier, updated_at
from latest
where op <> 'd'
