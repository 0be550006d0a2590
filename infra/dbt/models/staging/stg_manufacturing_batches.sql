select
    event_id,
    occurred_at,
    produced_at,
    payload:batch_id::string as batch_id,
    payload:card_id::string as card_id,
    payload:factory::string as factory,
    payload:started_at::timestamp_ntz as started_at,
    payload:completed_at::timestamp_ntz as completed_at,
    payload:quantity_planned::number(18, 0) as quantity_planned,
    payload:quantity_produced::number(18, 0) as quantity_produced,
    payload:quantity_defective::number(18, 0) as quantity_defective
from {{ ref('stg_events') }}
where event_type = 'manufacturing_batch'
