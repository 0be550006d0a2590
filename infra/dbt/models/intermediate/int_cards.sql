-- One row per card: the attributes of its latest catalog event and when the card was first seen.
with cards as (
    select
        *,
        min(occurred_at) over (partition by card_id) as first_seen_at
    from {{ ref('stg_cards') }}
)

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
from cards
{{ latest_per_key('card_id') }}
