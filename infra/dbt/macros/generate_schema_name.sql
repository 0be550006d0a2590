{# Models land in the schema their folder names (STAGING, INTERMEDIATE, MARTS), not in
   <target schema>_<name>: the harness and the docs refer to SLUICE.MARTS.DIM_CARD. #}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim | upper }}
    {%- endif -%}
{%- endmacro %}
