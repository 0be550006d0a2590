-- Every change of shop.order_status, its row after the change typed (null for a delete).
select
    row_key:order_id::string as order_id,
    op,
    commit_lsn,
    change_lsn,
    committed_at,
    after_row:status::string as status,
    after_row:updated_at::timestamp_ntz as updated_at
from {{ ref('stg_cdc_changes') }}
where table_name = 'shop.order_status'
