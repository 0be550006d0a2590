-- One row per line of each event that states an order's lines (the order, or an amendment);
-- line numbers are 1-based positions in the event.
-- The positions are flattened from a generated range rather than read from FLATTEN's INDEX:
-- the emulator numbers INDEX with ROW_NUMBER() OVER (), which is not stable across plans, and
-- the oracle caught lines swapped in FCT_ORDERS.
select
    e.event_id,
    e.payload:order_id::string as order_id,
    n.value::int + 1 as line_number,
    get(e.payload:lines, n.value::int):card_id::string as card_id,
    get(e.payload:lines, n.value::int):quantity::number(18, 0) as quantity,
    get(e.payload:lines, n.value::int):unit_price_cents::number(18, 0) as unit_price_cents
from {{ ref('stg_events') }} as e,
    lateral flatten(input => array_generate_range(0, array_size(e.payload:lines)::int)) as n
where e.event_type in ('order_created', 'order_amended')
