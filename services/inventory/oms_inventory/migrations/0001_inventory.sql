-- Inventory: warehouses, stock per (SKU, warehouse), the movement ledger, reservations,
-- sourcing decisions. ARCHITECTURE.md §6 and the service README.

CREATE TABLE warehouses (
    id                   text        PRIMARY KEY,
    name                 text        NOT NULL,
    lat                  double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon                  double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
    default_safety_stock integer     NOT NULL DEFAULT 0 CHECK (default_safety_stock >= 0),
    active               boolean     NOT NULL DEFAULT true,
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- The database itself refuses an oversell: no statement can leave reserved above on hand.
CREATE TABLE stock (
    sku          text    NOT NULL,
    warehouse_id text    NOT NULL REFERENCES warehouses (id),
    on_hand      integer NOT NULL DEFAULT 0,
    reserved     integer NOT NULL DEFAULT 0,
    safety_stock integer NOT NULL DEFAULT 0 CHECK (safety_stock >= 0),
    PRIMARY KEY (sku, warehouse_id),
    CONSTRAINT stock_no_oversell CHECK (reserved >= 0 AND reserved <= on_hand AND on_hand >= 0)
);
CREATE INDEX stock_by_warehouse ON stock (warehouse_id);

-- Every change of on_hand is one row here, with its idempotency key, so
-- on_hand = sum(quantity) per (sku, warehouse_id) always (conservation).
CREATE TABLE movements (
    id           bigserial   PRIMARY KEY,
    movement_id  text        NOT NULL UNIQUE,
    sku          text        NOT NULL,
    warehouse_id text        NOT NULL,
    kind         text        NOT NULL
        CHECK (kind IN ('receipt', 'adjustment', 'return_restock', 'write_off', 'shipment')),
    quantity     integer     NOT NULL,
    order_id     text,
    reason       text        NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX movements_by_stock ON movements (sku, warehouse_id);

-- Movements refused (unknown warehouse, on hand would drop below 0 or below reserved):
-- kept for operators, with no effect on stock.
CREATE TABLE rejected_movements (
    id           bigserial   PRIMARY KEY,
    movement_id  text        NOT NULL,
    sku          text        NOT NULL,
    warehouse_id text        NOT NULL,
    kind         text        NOT NULL,
    quantity     integer     NOT NULL,
    reason       text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Units of one order line held at one warehouse by one reserve request.
-- quantity shrinks on a short pick; reserved_quantity is what was reserved.
-- closed_by is the request that released, committed or wrote it off (for replies to repeats).
CREATE TABLE reservations (
    order_id          text        NOT NULL,
    request_id        text        NOT NULL,
    line_no           integer     NOT NULL,
    warehouse_id      text        NOT NULL,
    sku               text        NOT NULL,
    quantity          integer     NOT NULL CHECK (quantity >= 0),
    reserved_quantity integer     NOT NULL CHECK (reserved_quantity > 0),
    state             text        NOT NULL DEFAULT 'active'
        CHECK (state IN ('active', 'released', 'committed', 'written_off')),
    closed_by         text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    closed_at         timestamptz,
    PRIMARY KEY (order_id, request_id, line_no, warehouse_id)
);

-- Why each reserve request was answered as it was: the candidates with their
-- distance, fillable units and score, what was chosen, what was missing.
CREATE TABLE sourcing_decisions (
    decision_id text        PRIMARY KEY,
    order_id    text        NOT NULL,
    request_id  text        NOT NULL,
    outcome     text        NOT NULL CHECK (outcome IN ('reserved', 'failed')),
    reason      text,
    ship_to     jsonb       NOT NULL,
    candidates  jsonb       NOT NULL,
    chosen      jsonb       NOT NULL,
    unfilled    jsonb       NOT NULL,
    attempts    integer     NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (order_id, request_id)
);

-- One row per release, commit or short-pick request: a repeat finds it and changes
-- nothing (its reply is rebuilt from the reservations it closed, or kept in reply).
CREATE TABLE requests (
    order_id     text        NOT NULL,
    request_id   text        NOT NULL,
    kind         text        NOT NULL CHECK (kind IN ('release', 'commit', 'short_pick')),
    warehouse_id text,
    reply        jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, request_id)
);
