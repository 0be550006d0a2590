-- The operational database the cdc component reads: customers and order fulfilment status.
CREATE SCHEMA IF NOT EXISTS shop;

CREATE TABLE IF NOT EXISTS shop.customers (
    customer_id text PRIMARY KEY,
    name        text        NOT NULL,
    email       text        NOT NULL,
    -- ISO 3166-1 alpha-2.
    country     text        NOT NULL,
    tier        text        NOT NULL CHECK (tier IN ('bronze', 'silver', 'gold', 'platinum')),
    updated_at  timestamptz NOT NULL
);
-- FULL: an update carries the whole row before it (a country or tier move shows both sides)
-- and a delete the row it removed, which closes that customer's history in DIM_CUSTOMER.
ALTER TABLE shop.customers REPLICA IDENTITY FULL;

CREATE TABLE IF NOT EXISTS shop.order_status (
    order_id   text        PRIMARY KEY,
    status     text        NOT NULL
               CHECK (status IN ('placed', 'paid', 'shipped', 'delivered', 'cancelled')),
    updated_at timestamptz NOT NULL
);
-- DEFAULT (the primary key): a status change needs only the key to find its row.
ALTER TABLE shop.order_status REPLICA IDENTITY DEFAULT;

-- What the cdc component captures. `up` then makes its replication slot (while the tables are
-- still empty, so no change is missed before the first cdc run).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'sluice_cdc') THEN
        CREATE PUBLICATION sluice_cdc FOR TABLE shop.customers, shop.order_status;
    END IF;
END
$$;

-- Where the cdc component records that a slot's initial snapshot completed (Debezium keeps this
-- in its offsets). Kept beside the slot, so it lives and dies with the slot's database.
CREATE SCHEMA IF NOT EXISTS cdc;
CREATE TABLE IF NOT EXISTS cdc.snapshots (
    slot_name        text        PRIMARY KEY,
    consistent_point pg_lsn      NOT NULL,
    rows_read        bigint      NOT NULL,
    completed_at     timestamptz NOT NULL
);
