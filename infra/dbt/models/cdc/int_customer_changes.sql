-- Every change of shop.customers, its row after the change typed (null for a delete).
select
    row_key:customer_id::string as customer_id,
    op,
    commit_lsn,
    change_lsn,
    committed_at,
    after_row:name::string as name,
    after_row:email::string as email,
    after_row:country::string as country,
    after_row:tier::string as tier,
    after_row:updated_at::timestamp_ntz as updated_at
from {{ ref('stg_cdc_changes') }}
where table_name = 'shop.customers'
