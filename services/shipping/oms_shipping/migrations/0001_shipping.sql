-- Shipping: shipments, their parcels, every booking attempt, labels, carrier scans.

CREATE TABLE shipments (
    shipment_id        text PRIMARY KEY,
    order_id           text NOT NULL,
    status             text NOT NULL
        CHECK (status IN ('booking', 'booked', 'failed', 'cancelled', 'dispatched', 'delivered')),
    -- What BookShipment asked for; all NULL for a tombstone (cancelled before it was booked).
    request_id         text,
    warehouse_id       text,
    method             text CHECK (method IN ('standard', 'express')),
    origin_lat         double precision,
    origin_lon         double precision,
    dest_lat           double precision,
    dest_lon           double precision,
    distance_km        double precision,
    zone               text,
    -- The booking in hand (the latest attempt).
    attempt            integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    booking_id         text,
    carrier            text,
    service_level      text,
    cost_minor         bigint CHECK (cost_minor >= 0),
    currency           text,
    promised_ship_date date,
    tracking_number    text UNIQUE,
    failure_reason     text,
    -- Post-dispatch statuses already reported to the saga (each once).
    reported           text[] NOT NULL DEFAULT '{}',
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    booked_at          timestamptz,
    dispatched_at      timestamptz,
    delivered_at       timestamptz,
    cancelled_at       timestamptz,
    CHECK (request_id IS NOT NULL OR status = 'cancelled'),
    CHECK (tracking_number IS NOT NULL OR status NOT IN ('booked', 'dispatched', 'delivered'))
);
CREATE INDEX shipments_order_idx ON shipments (order_id);

CREATE TABLE shipment_packages (
    shipment_id  text NOT NULL REFERENCES shipments (shipment_id),
    package_id   text NOT NULL,
    seq          integer NOT NULL,
    weight_grams integer NOT NULL CHECK (weight_grams > 0),
    items        jsonb NOT NULL,
    PRIMARY KEY (shipment_id, package_id)
);

CREATE TABLE booking_attempts (
    booking_id         text PRIMARY KEY,
    shipment_id        text NOT NULL REFERENCES shipments (shipment_id),
    attempt            integer NOT NULL CHECK (attempt >= 1),
    carrier            text NOT NULL,
    service_level      text NOT NULL,
    cost_minor         bigint NOT NULL CHECK (cost_minor >= 0),
    currency           text NOT NULL,
    promised_ship_date date NOT NULL,
    status             text NOT NULL DEFAULT 'requested'
        CHECK (status IN ('requested', 'accepted', 'rejected', 'cancelled')),
    reason             text,
    tracking_number    text,
    requested_at       timestamptz NOT NULL,
    answered_at        timestamptz,
    UNIQUE (shipment_id, attempt),
    -- Each carrier is asked once per shipment.
    UNIQUE (shipment_id, carrier)
);

CREATE TABLE labels (
    shipment_id     text PRIMARY KEY REFERENCES shipments (shipment_id),
    tracking_number text NOT NULL,
    carrier         text NOT NULL,
    format          text NOT NULL CHECK (format IN ('ZPL', 'PDF')),
    content         text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    voided_at       timestamptz
);

-- Every scan, also for unknown or cancelled shipments (no foreign key on purpose).
CREATE TABLE tracking_events (
    id              bigserial PRIMARY KEY,
    shipment_id     text NOT NULL,
    order_id        text NOT NULL,
    carrier         text NOT NULL,
    tracking_number text NOT NULL,
    scan            text NOT NULL,
    at              timestamptz NOT NULL,
    detail          text NOT NULL DEFAULT '',
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (shipment_id, scan, at)
);
CREATE INDEX tracking_events_order_idx ON tracking_events (order_id);
