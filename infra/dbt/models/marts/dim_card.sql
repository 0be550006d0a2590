-- Grain: card.
select
    card_id,
    sku,
    card_name,
    set_name,
    rarity,
    release_date,
    list_price_cents,
    currency,
    first_seen_at
from {{ ref('int_cards') }}
