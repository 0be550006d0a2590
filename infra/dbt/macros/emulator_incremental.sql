{#- FCT_ORDERS is merged incrementally on both targets. fakesnow (DuckDB inside) lacks two things
    dbt-snowflake's merge path uses, and on the emulator only these are emulated; on an account
    the SQL is dbt-snowflake's own:
    1. temporary objects in a named database: DuckDB keeps them in its `temp` catalog, so
       `create temporary view SLUICE.MARTS.FCT_ORDERS__dbt_tmp` fails ("TEMPORARY table names
       can *only* use the temp catalog"). The staging view is an ordinary view there, dropped
       by the materialization at its end as the temporary one would be.
    2. MERGE inside an explicit transaction, and unqualified source columns in MERGE's insert:
       fakesnow rewrites MERGE into statements that join target and source (so `values
       ("ORDER_ID", ...)` is ambiguous) and that write its own catalog (which DuckDB refuses in
       a transaction that wrote another database). The MERGE runs on its own, its insert
       values qualified with the source's alias, which Snowflake reads the same way. -#}

{% macro sluice_on_emulator() -%}
    {{ return(target.name == 'emulator') }}
{%- endmacro %}

{% macro snowflake__create_view_as_with_temp_flag(relation, sql, is_temporary=False) -%}
    {{ return(dbt.snowflake__create_view_as_with_temp_flag(relation, sql, is_temporary and not sluice_on_emulator())) }}
{%- endmacro %}

{% macro snowflake__get_merge_sql(target, source_sql, unique_key, dest_columns, incremental_predicates) -%}
    {%- if unique_key is none or not sluice_on_emulator() -%}
        {{ return(dbt.snowflake__get_merge_sql(target, source_sql, unique_key, dest_columns, incremental_predicates)) }}
    {%- endif -%}
    {%- set merge = dbt.default__get_merge_sql(target, source_sql, unique_key, dest_columns, incremental_predicates) -%}
    {%- set names = dest_columns | map(attribute='name') | list -%}
    {%- set qualified = [] -%}
    {%- for name in names -%}
        {%- do qualified.append('DBT_INTERNAL_SOURCE.' ~ adapter.quote(name)) -%}
    {%- endfor -%}
    {%- set pattern = 'values\\s*\\(\\s*' ~ modules.re.escape(get_quoted_csv(names)) ~ '\\s*\\)' -%}
    {%- set fixed = modules.re.subn(pattern, 'values (' ~ qualified | join(', ') ~ ')', merge) -%}
    {%- if fixed[1] != 1 -%}
        {{ exceptions.raise_compiler_error("the emulator's MERGE found " ~ fixed[1] ~ " insert value lists in dbt's MERGE, expected 1: dbt's MERGE changed shape; see infra/dbt/macros/emulator_incremental.sql") }}
    {%- endif -%}
    {{ return(fixed[0]) }}
{%- endmacro %}
