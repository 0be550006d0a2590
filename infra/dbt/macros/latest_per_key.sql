{# The rule for "latest wins", in one place (the oracle's `recency` is its Rust twin): per
   business key, the event with the latest event time, then produce time, then event id. #}
{% macro latest_per_key(key) -%}
qualify row_number() over (
    partition by {{ key }}
    order by occurred_at desc, produced_at desc, event_id desc
) = 1
{%- endmacro %}
