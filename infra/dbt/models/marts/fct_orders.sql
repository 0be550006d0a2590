-- Grain: order line, as the order's latest lines state it. Money in integer cents.
-- Merged incrementally (on the emulator too, see macros/emulator_incremental.sql): every order
-- with an order event loaded within a look-back window is re-read whole, so a late amendment
-- or cancellation of an old order still lands. harness/tests/e2e_incremental.rs streams
-- scenarios in waves and checks the merge against the oracle and a full refresh after each.
-- stg_events is read only in the incremental branch; dbt must know of it at parse time, or the
-- first merge fails to compile (it did, until the waves test first ran the merge).
-- depends_on: {{ ref('stg_events') }}
{{ config(
    materialized = 'incremental',
    unique_key = ['order_id', 'line_number'],
    incremental_strategy = 'merge',
) }}

select
    order_id,
    line_number,
    card_id,
    customer_id,
    channel,
    ship_country,
    quantity,
    unit_price_cents,
    quantity * unit_price_cents as amount_cents,
    ordered_at,
    ordered_at::date as ordered_date,
    is_cancelled,
    cancelled_at
from {{ ref('int_order_lines') }}
{% if is_incremental() %}
where order_id in (
    select payload:order_id::string
    from {{ ref('stg_events') }}
    where source = 'orders'
      and loaded_at >= dateadd(day, -{{ var('incremental_lookback_days', 3) }}, current_timestamp())
)
{% endif %}
