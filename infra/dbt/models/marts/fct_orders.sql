-- Grain: order line. Money in integer cents.
-- On a real account the table is merged incrementally, re-reading a lookback window of recent
-- order dates so late events still land; the emulator (fakesnow) rebuilds it as a table, since
-- its temporary views break dbt's incremental path.
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
    ordered_at::date as ordered_date
from {{ ref('int_order_lines') }}
{% if is_incremental() %}
where ordered_at::date >= (
    select dateadd(day, -{{ var('incremental_lookback_days', 3) }}, max(ordered_date)) from {{ this }}
)
{% endif %}
