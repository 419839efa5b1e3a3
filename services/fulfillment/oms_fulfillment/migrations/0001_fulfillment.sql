-- Fulfillment: one fulfillment order per (order, sourced warehouse), its pick list and packages.

-- The catalogue: where each SKU is stored and what one unit weighs. SKUs missing
-- here get a stable default bin and 500 g (see README).
CREATE TABLE items (
    sku          text    PRIMARY KEY,
    bin          text    NOT NULL,
    weight_grams integer NOT NULL CHECK (weight_grams > 0)
);

-- fulfillment_id is chosen by the saga and is the idempotency key of the creation.
-- A cancel for an unknown id leaves a tombstone: status 'cancelled', no warehouse.
CREATE TABLE fulfillment_orders (
    fulfillment_id text        PRIMARY KEY,
    order_id       text        NOT NULL,
    warehouse_id   text,
    status         text        NOT NULL
        CHECK (status IN ('picking', 'packed', 'cancelled', 'handed_over')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (warehouse_id IS NOT NULL OR status = 'cancelled')
);
CREATE INDEX fulfillment_orders_order_id ON fulfillment_orders (order_id);

-- The unit weight is copied from the catalogue at creation (and the bin onto the
-- pick list's stop), so packing does not depend on later catalogue edits. picked is
-- set when the pick is confirmed.
CREATE TABLE fulfillment_lines (
    fulfillment_id    text    NOT NULL REFERENCES fulfillment_orders (fulfillment_id),
    line_no           integer NOT NULL,
    sku               text    NOT NULL,
    quantity          integer NOT NULL CHECK (quantity > 0),
    unit_weight_grams integer NOT NULL CHECK (unit_weight_grams > 0),
    picked            integer CHECK (picked >= 0 AND picked <= quantity),
    PRIMARY KEY (fulfillment_id, line_no)
);

CREATE TABLE pick_lists (
    pick_list_id   text        PRIMARY KEY,
    fulfillment_id text        NOT NULL UNIQUE REFERENCES fulfillment_orders (fulfillment_id),
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- The picker's walk: seq 1, 2, ... in walking order of the bins.
CREATE TABLE pick_list_stops (
    pick_list_id text    NOT NULL REFERENCES pick_lists (pick_list_id),
    seq          integer NOT NULL CHECK (seq >= 1),
    bin          text    NOT NULL,
    line_no      integer NOT NULL,
    sku          text    NOT NULL,
    quantity     integer NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (pick_list_id, seq),
    UNIQUE (pick_list_id, line_no)
);

-- One row per parcel; items is a JSON array of {line_no, sku, quantity}.
CREATE TABLE packages (
    package_id     text        PRIMARY KEY,
    fulfillment_id text        NOT NULL REFERENCES fulfillment_orders (fulfillment_id),
    seq            integer     NOT NULL CHECK (seq >= 1),
    weight_grams   integer     NOT NULL CHECK (weight_grams > 0),
    items          jsonb       NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (fulfillment_id, seq)
);
