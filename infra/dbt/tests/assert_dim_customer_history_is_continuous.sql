-- DIM_CUSTOMER's versions of a customer follow each other: each ends exactly where the next
-- begins (no gap, no overlap), never before it starts; only the last is current or deleted,
-- and a deleted customer has no current version.
with versions as (
    select
        *,
        lead(valid_from) over (partition by customer_id order by valid_from) as next_valid_from,
        count_if(is_current) over (partition by customer_id) as current_versions,
        count_if(is_deleted) over (partition by customer_id) as deleted_versions
    from {{ ref('dim_customer') }}
)

select customer_id, valid_from, valid_to, next_valid_from, is_current, is_deleted
from versions
where (next_valid_from is not null and (valid_to is null or valid_to <> next_valid_from))
   or (next_valid_from is not null and (is_current or is_deleted))
   or valid_to < valid_from
   or current_versions + deleted_versions <> 1
   or (is_current and valid_to is not null)
