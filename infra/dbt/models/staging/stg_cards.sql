select
    event_id,
    occurred_at,
    produced_at,
    payload:card_id::string as card_id,
    payload:sku::string as sku,
    payload:name::string as card_name,
    payload:set_name::string as set_name,
    payload:rarity::string as rarity,
    payload:release_date::date as release_date,
    payload:list_price_cents::number(18, 0) as list_price_cents,
    payload:currency::string as currency
from {{ ref('stg_events') }}
where event_type = 'card_catalog_created'
