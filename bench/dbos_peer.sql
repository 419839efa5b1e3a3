-- Application schema of the DBOS peer (bench/dbos_peer.py): the OMS's order journey
-- collapsed into one database. DBOS keeps its own workflow state in a separate
-- system database, plus a dbos.datasource_outputs table here that it creates itself.

CREATE TABLE warehouses (
    id  text PRIMARY KEY,
    lat double precision NOT NULL,
    lon double precision NOT NULL
);

CREATE TABLE stock (
    sku          text    NOT NULL,
    warehouse_id text    NOT NULL REFERENCES warehouses (id),
    on_hand      integer NOT NULL,
    reserved     integer NOT NULL DEFAULT 0,
    safety_stock integer NOT NULL DEFAULT 0,
    PRIMARY KEY (sku, warehouse_id),
    CHECK (reserved >= 0 AND reserved <= on_hand)
);

CREATE TABLE orders (
    order_id          uuid        PRIMARY KEY,
    channel           text        NOT NULL,
    external_order_id text        NOT NULL,
    status            text        NOT NULL,
    total             bigint      NOT NULL,
    ship_lat          double precision NOT NULL,
    ship_lon          double precision NOT NULL,
    lines             jsonb       NOT NULL,
    intake_at         timestamptz NOT NULL,
    reserved_at       timestamptz,
    shipped_at        timestamptz,
    UNIQUE (channel, external_order_id)
);

CREATE TABLE reservations (
    order_id     uuid    NOT NULL REFERENCES orders (order_id),
    line_no      integer NOT NULL,
    sku          text    NOT NULL,
    warehouse_id text    NOT NULL,
    quantity     integer NOT NULL CHECK (quantity > 0),
    state        text    NOT NULL DEFAULT 'reserved' CHECK (state IN ('reserved', 'committed')),
    PRIMARY KEY (order_id, line_no)
);

CREATE TABLE pick_lists (
    order_id     uuid  NOT NULL REFERENCES orders (order_id),
    warehouse_id text  NOT NULL,
    lines        jsonb NOT NULL,
    PRIMARY KEY (order_id, warehouse_id)
);

CREATE TABLE packages (
    package_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id     uuid    NOT NULL REFERENCES orders (order_id),
    warehouse_id text    NOT NULL,
    weight_g     integer NOT NULL,
    UNIQUE (order_id, warehouse_id)
);

CREATE TABLE shipments (
    package_id      bigint  PRIMARY KEY REFERENCES packages (package_id),
    order_id        uuid    NOT NULL REFERENCES orders (order_id),
    carrier         text    NOT NULL,
    price           integer NOT NULL,
    tracking_number text    NOT NULL UNIQUE
);
