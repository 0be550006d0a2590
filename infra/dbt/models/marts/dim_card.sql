-- Grain: card. int_cards already holds exactly the mart's columns.
select * from {{ ref('int_cards') }}
