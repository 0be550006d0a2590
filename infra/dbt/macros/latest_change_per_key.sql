{# "Latest wins" for the change log (the oracle for it is the source database): per key, the
   change with the greatest commit LSN, then change LSN. A row is changed by one transaction at
   a time, so commit order is change order; a snapshot read (op r) sits at its snapshot's
   consistent point, before every change streamed after it. #}
{% macro latest_change_per_key(key) -%}
qualify row_number() over (
    partition by {{ key }}
    order by commit_lsn desc, change_lsn desc
) = 1
{%- endmacro %}
