-- A transaction's changes arrive whole: every streamed transaction (op c/u/d) in the change log
-- has as many distinct changes as its tx_size says. Half a transaction means the cdc
-- acknowledged a position it had not delivered.
select slot_name, commit_lsn, max(tx_size) as tx_size, count(*) as changes
from {{ ref('stg_cdc_changes') }}
where op <> 'r'
group by slot_name, commit_lsn
having count(*) <> max(tx_size)
