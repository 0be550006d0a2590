-- Grain: order line, as the order's latest lines state it. Money in integer cents.
-- On a real account the table is merged incrementally: every order with an order event loaded
-- within a lookback window is re-read whole, so a late amendment or cancellation of an old
-- order still lands; the emulator (fakesnow) rebuilds it as a table, since its temporary views
-- break dbt's incremental path.
{{ config(
    materialized = 'table' if target.name == 'emulator' else 'incremental',
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
