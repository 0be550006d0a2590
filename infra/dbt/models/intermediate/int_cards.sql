-- One row per card: the attributes of its latest catalog event (by event time, then produce
-- time, then event id, so the pick is total) and when the card was first seen.
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
qualify row_number() over (
    partition by card_id
    order by occurred_at desc, produced_at desc, event_id desc
) = 1
