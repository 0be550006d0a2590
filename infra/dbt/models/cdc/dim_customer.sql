-- Type-2 history of shop.customers. Grain: customer and version. A version starts at its row's
-- updated_at and ends where the next one starts, or at the commit of the delete that erased the
-- customer (the version is closed, not dropped). A change that restates the previous version
-- (a snapshot read again after a restart) starts no new one.
with changes as (
    select
        *,
        case
            when op = 'd' then 'deleted'
            else md5(
                coalesce(name, '') || '|' || coalesce(email, '') || '|' || coalesce(country, '')
                || '|' || coalesce(tier, '') || '|' || coalesce(updated_at::string, '')
            )
        end as state
    from {{ ref('int_customer_changes') }}
),

distinct_changes as (
    select
        *,
        lag(state) over (partition by customer_id order by commit_lsn, change_lsn) as previous_state
    from changes
),

kept as (
    select * from distinct_changes
    where previous_state is null or previous_state <> state
),

sequenced as (
    select
        *,
        lead(op) over (partition by customer_id order by commit_lsn, change_lsn) as next_op,
        lead(updated_at) over (partition by customer_id order by commit_lsn, change_lsn)
            as next_updated_at,
        lead(committed_at) over (partition by customer_id order by commit_lsn, change_lsn)
            as next_committed_at
    from kept
)

select
    customer_id,
    name,
    email,
    country,
    tier,
    updated_at as valid_from,
    case when next_op = 'd' then next_committed_at else next_updated_at end as valid_to,
    next_op is null as is_current,
    coalesce(next_op = 'd', false) as is_deleted
from sequenced
where op <> 'd'
