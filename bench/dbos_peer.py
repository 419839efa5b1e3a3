"""The DBOS peer: our order journey as one DBOS durable workflow per order, under paced open-loop load.

What it measures. Orders from the shared benchmark world (``bench/catalogue.py``)
are started as workflows, one every ``1/rate`` seconds for ``duration`` seconds,
each stamped with its publish time (its scheduled time: see :func:`offer`), without
waiting for any to finish; then the run waits until DBOS has no pending workflow, at
most ``--grace`` seconds past the window. Each order runs
validate -> reserve -> pick -> pack -> ship, every step a DBOS datasource transaction
(READ COMMITTED, as our services use; DBOS defaults to SERIALIZABLE) whose output
DBOS checkpoints in the same database transaction, so a crashed process resumes the
workflow at its first unfinished step. The steps stamp ``reserved_at`` and
``shipped_at`` with the same process clock as the publish time; from those come
intake->reserved and intake->shipped latency (p50/p95/p99/max), the achieved rate
(orders shipped by the end of the offered window plus 1 s, per second of it, as
``bench/run.py`` counts the OMS), the orders that did not finish, this process's CPU
seconds over the load window (and, separately, the CPU of the PostgreSQL backends
serving its two databases) and its peak RSS.

How it differs from our OMS. One Python process does everything: no Kafka hops, no
outbox relay or inbox, no per-service databases and login roles, no status topic.
Durability comes from DBOS instead: the workflow's inputs and status in the DBOS
system database (``bench_dbos_sys``), each step's output there and, for transactions,
in ``dbos.datasource_outputs`` beside the application tables (``bench_dbos``). It uses
DBOS's synchronous API (workflows on DBOS's executor threads): on this machine the
asyncio API (``AsyncSQLAlchemyDatasource``, ``start_workflow_async``), which hops to a
thread for every system-database call, cost about 1.5x the CPU per order and
saturated at a lower rate. Stock SQL is the inventory service's: one conditional
``UPDATE stock ... WHERE on_hand - reserved - safety_stock >= q`` per line, lines in
SKU order, the next-nearest warehouse when it changes no row; committing locks the
stock rows in (sku, warehouse) order. Sourcing is simpler (nearest warehouse per line,
no single-warehouse preference) and there are no cancellations, returns, carrier
callbacks or status fan-out.

Usage::

    python bench/dbos_peer.py --rate 100 --duration 30 --skus 10000 --json out.json
    python bench/dbos_peer.py --steps 50,100,200 --duration 20 --json steps.json

It prints a one-line summary, then the result as one line of JSON (the last line).

Each run drops and recreates its two databases, so runs are independent; ``--steps``
runs every rate in a fresh subprocess of this script and writes a JSON list.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypedDict

import psutil
import psycopg
import sqlalchemy as sa
from dbos import DBOS, DBOSConfig, SetWorkflowID, SQLAlchemyDatasource
from psycopg import sql
from pydantic import ValidationError
from sqlalchemy.engine import CursorResult

from oms_shared.contracts.order import PlaceOrder, order_id_for

sys.path.insert(0, str(Path(__file__).resolve().parent))
from catalogue import WAREHOUSES, Catalogue

__all__ = ["PeerOptions", "build_journey", "main", "run_peer"]

log = logging.getLogger("dbos_peer")

DEFAULT_ADMIN_URL = "postgresql://postgres:postgres@/postgres?host=/tmp&port=55432"  # as the services: Unix socket
SCHEMA_FILE = Path(__file__).with_name("dbos_peer.sql")
STOCK_UNITS = 1_000_000
UNIT_WEIGHT_G = 500
EARTH_RADIUS_KM = 6371.0088
#: (carrier, base price, per started kg, per 100 km), minor units: the cheapest quote wins.
CARRIERS: tuple[tuple[str, int, int, int], ...] = (
    ("DHL", 449, 60, 15),
    ("DPD", 399, 85, 20),
    ("GLS", 479, 45, 10),
)
ISOLATION: Literal["READ COMMITTED"] = "READ COMMITTED"


# --- the journey's values (pickled into DBOS checkpoints) -------------------------------
class Line(NamedTuple):
    line_no: int
    sku: str
    quantity: int


class Allocation(NamedTuple):
    line_no: int
    sku: str
    warehouse_id: str
    quantity: int


class Package(NamedTuple):
    package_id: int
    warehouse_id: str
    weight_g: int


class Accepted(NamedTuple):
    order_id: str
    lat: float
    lon: float
    lines: tuple[Line, ...]


Outcome = Literal["shipped", "rejected", "duplicate", "backordered"]


# --- pure helpers ------------------------------------------------------------------------
def haversine_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance between two (lat, lon) points in decimal degrees, in km."""
    lat1, lat2 = math.radians(a[0]), math.radians(b[0])
    dlat, dlon = lat2 - lat1, math.radians(b[1] - a[1])
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


_LOCATIONS = {wh: (lat, lon) for wh, lat, lon in WAREHOUSES}


def nearest_warehouses(lat: float, lon: float) -> list[str]:
    """Every warehouse, nearest first (ties by id)."""
    return sorted(_LOCATIONS, key=lambda wh: (haversine_km((lat, lon), _LOCATIONS[wh]), wh))


def cheapest_quote(weight_g: int, distance_km: float) -> tuple[str, int]:
    """(carrier, price) of the cheapest of the fixed rate cards; ties by carrier name."""
    kg = max(1, math.ceil(weight_g / 1000))
    hundreds = math.ceil(distance_km / 100)
    return min(((name, base + per_kg * kg + per_100 * hundreds) for name, base, per_kg, per_100 in CARRIERS),
               key=lambda q: (q[1], q[0]))  # fmt: skip


def by_warehouse(allocations: Iterable[Allocation]) -> dict[str, list[Allocation]]:
    """Allocations grouped per warehouse (one fulfillment each), warehouses in id order."""
    groups: dict[str, list[Allocation]] = defaultdict(list)
    for a in allocations:
        groups[a.warehouse_id].append(a)
    return dict(sorted(groups.items()))


# --- SQL ----------------------------------------------------------------------------------
_INSERT_ORDER = sa.text("""
INSERT INTO orders (order_id, channel, external_order_id, status, total, ship_lat, ship_lon, lines, intake_at)
VALUES (:order_id, :channel, :external_order_id, 'accepted', :total, :lat, :lon, CAST(:lines AS jsonb),
        to_timestamp(:intake_at))
ON CONFLICT (channel, external_order_id) DO NOTHING
RETURNING order_id
""")
_RESERVE = sa.text("""
UPDATE stock SET reserved = reserved + :q
WHERE sku = :sku AND warehouse_id = :wh AND on_hand - reserved - safety_stock >= :q
""")
_UNRESERVE = sa.text("UPDATE stock SET reserved = reserved - :q WHERE sku = :sku AND warehouse_id = :wh")
_INSERT_RESERVATIONS = sa.text("""
INSERT INTO reservations (order_id, line_no, sku, warehouse_id, quantity)
SELECT :order_id, u.* FROM unnest(CAST(:line_nos AS int[]), CAST(:skus AS text[]),
                                  CAST(:whs AS text[]), CAST(:qs AS int[])) AS u
""")
_SET_STATUS = sa.text("UPDATE orders SET status = :status WHERE order_id = :order_id")
_MARK_RESERVED = sa.text(
    "UPDATE orders SET status = 'reserved', reserved_at = to_timestamp(:at) WHERE order_id = :order_id"
)
_INSERT_PICK_LIST = sa.text(
    "INSERT INTO pick_lists (order_id, warehouse_id, lines) VALUES (:order_id, :wh, CAST(:lines AS jsonb))"
)
_INSERT_PACKAGE = sa.text(
    "INSERT INTO packages (order_id, warehouse_id, weight_g) VALUES (:order_id, :wh, :weight) RETURNING package_id"
)
_INSERT_SHIPMENT = sa.text("""
INSERT INTO shipments (package_id, order_id, carrier, price, tracking_number)
VALUES (:package_id, :order_id, :carrier, :price, :tracking)
""")
# Same shape as the inventory service's commit: stock rows locked in (sku, warehouse) order.
_COMMIT_STOCK = sa.text("""
WITH r AS (
    UPDATE reservations SET state = 'committed'
    WHERE order_id = :order_id AND state = 'reserved'
    RETURNING sku, warehouse_id, quantity
), per_row AS (
    SELECT sku, warehouse_id, sum(quantity)::int AS quantity FROM r GROUP BY sku, warehouse_id
), locked AS (
    SELECT st.sku, st.warehouse_id FROM stock st
    JOIN per_row p ON p.sku = st.sku AND p.warehouse_id = st.warehouse_id
    ORDER BY st.sku COLLATE "C", st.warehouse_id COLLATE "C"
    FOR UPDATE OF st
)
UPDATE stock st SET on_hand = st.on_hand - p.quantity, reserved = st.reserved - p.quantity
FROM per_row p JOIN locked l ON l.sku = p.sku AND l.warehouse_id = p.warehouse_id
WHERE st.sku = p.sku AND st.warehouse_id = p.warehouse_id
""")
_MARK_SHIPPED = sa.text(
    "UPDATE orders SET status = 'shipped', shipped_at = to_timestamp(:at) WHERE order_id = :order_id"
)


def _rowcount(result: sa.Result[Any]) -> int:
    assert isinstance(result, CursorResult)
    return result.rowcount


# --- the workflow ----------------------------------------------------------------------------
Journey = Callable[[str, str, float], Outcome]


def build_journey(ds: SQLAlchemyDatasource) -> Journey:
    """Register the five transactions and the workflow on ``ds``; return the workflow.

    Built in a function because the datasource (and so its ``transaction`` decorator)
    exists only once its database does; call once per process, before ``DBOS.launch``.
    """

    @ds.transaction(isolation_level=ISOLATION)
    def validate(body: str, intake_at: float) -> Accepted | Literal["rejected", "duplicate"]:
        try:
            order = PlaceOrder.model_validate_json(body)
        except ValidationError:
            return "rejected"
        at = order.ship_to.coordinates
        if at is None:  # the OMS geocodes postcodes; the peer only serves coordinates
            return "rejected"
        order_id = order_id_for(order.channel, order.external_order_id)
        lines = tuple(Line(n, ln.sku, ln.quantity) for n, ln in enumerate(order.lines, start=1))
        row = (ds.sql_session().execute(_INSERT_ORDER, {
            "order_id": order_id, "channel": order.channel, "external_order_id": order.external_order_id,
            "total": order.total, "lat": at.lat, "lon": at.lon, "intake_at": intake_at,
            "lines": json.dumps([ln._asdict() for ln in lines]),
        })).first()  # fmt: skip
        return "duplicate" if row is None else Accepted(order_id, at.lat, at.lon, lines)

    @ds.transaction(isolation_level=ISOLATION)
    def reserve(order: Accepted) -> list[Allocation]:
        session = ds.sql_session()
        ranked = nearest_warehouses(order.lat, order.lon)
        done: list[Allocation] = []
        for line in sorted(order.lines, key=lambda ln: (ln.sku, ln.line_no)):
            for wh in ranked:
                params = {"sku": line.sku, "wh": wh, "q": line.quantity}
                if _rowcount(session.execute(_RESERVE, params)) == 1:
                    done.append(Allocation(line.line_no, line.sku, wh, line.quantity))
                    break
            else:  # no warehouse can serve the line: give back what this order took
                for a in done:
                    session.execute(_UNRESERVE, {"sku": a.sku, "wh": a.warehouse_id, "q": a.quantity})
                session.execute(_SET_STATUS, {"order_id": order.order_id, "status": "backordered"})
                return []
        session.execute(_INSERT_RESERVATIONS, {
            "order_id": order.order_id, "line_nos": [a.line_no for a in done], "skus": [a.sku for a in done],
            "whs": [a.warehouse_id for a in done], "qs": [a.quantity for a in done],
        })  # fmt: skip
        session.execute(_MARK_RESERVED, {"order_id": order.order_id, "at": time.time()})
        return done

    @ds.transaction(isolation_level=ISOLATION)
    def pick(order_id: str, allocations: list[Allocation]) -> None:
        session = ds.sql_session()
        for wh, group in by_warehouse(allocations).items():
            lines = json.dumps([{"line_no": a.line_no, "sku": a.sku, "quantity": a.quantity} for a in group])
            session.execute(_INSERT_PICK_LIST, {"order_id": order_id, "wh": wh, "lines": lines})
        session.execute(_SET_STATUS, {"order_id": order_id, "status": "fulfilling"})

    @ds.transaction(isolation_level=ISOLATION)
    def pack(order_id: str, allocations: list[Allocation]) -> list[Package]:
        session = ds.sql_session()
        packages = []
        for wh, group in by_warehouse(allocations).items():
            weight = UNIT_WEIGHT_G * sum(a.quantity for a in group)
            params = {"order_id": order_id, "wh": wh, "weight": weight}
            package_id = (session.execute(_INSERT_PACKAGE, params)).scalar_one()
            packages.append(Package(package_id, wh, weight))
        session.execute(_SET_STATUS, {"order_id": order_id, "status": "packed"})
        return packages

    @ds.transaction(isolation_level=ISOLATION)
    def ship(order: Accepted, packages: list[Package]) -> None:
        session = ds.sql_session()
        for p in packages:
            carrier, price = cheapest_quote(
                p.weight_g, haversine_km(_LOCATIONS[p.warehouse_id], (order.lat, order.lon))
            )
            session.execute(_INSERT_SHIPMENT, {
                "package_id": p.package_id, "order_id": order.order_id, "carrier": carrier, "price": price,
                "tracking": f"{carrier}{p.package_id:012d}",
            })  # fmt: skip
        session.execute(_COMMIT_STOCK, {"order_id": order.order_id})
        session.execute(_MARK_SHIPPED, {"order_id": order.order_id, "at": time.time()})

    @DBOS.workflow(name="order_journey")
    def order_journey(order_id: str, body: str, intake_at: float) -> Outcome:
        accepted = validate(body, intake_at)
        if not isinstance(accepted, Accepted):
            return accepted
        allocations = reserve(accepted)
        if not allocations:
            return "backordered"
        pick(order_id, allocations)
        ship(accepted, pack(order_id, allocations))
        return "shipped"

    return order_journey


# --- databases ------------------------------------------------------------------------------
def database_url(admin_url: str, name: str) -> str:
    return sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def recreate_databases(admin_url: str, names: Sequence[str]) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def create_schema_and_seed(app_url: str, skus: int) -> None:
    """Apply ``dbos_peer.sql``; stock every SKU in every warehouse with :data:`STOCK_UNITS`."""
    catalogue = Catalogue(skus=skus)
    with psycopg.connect(app_url) as conn:
        conn.execute(SCHEMA_FILE.read_text().encode())
        with conn.cursor().copy("COPY warehouses (id, lat, lon) FROM STDIN") as copy:
            for row in WAREHOUSES:
                copy.write_row(row)
        with conn.cursor().copy("COPY stock (sku, warehouse_id, on_hand) FROM STDIN") as copy:
            for rank in range(1, skus + 1):
                for wh, _, _ in WAREHOUSES:
                    copy.write_row((catalogue.sku(rank), wh, STOCK_UNITS))
        conn.commit()
        conn.execute("ANALYZE")


def server_state(url: str, names: Sequence[str]) -> tuple[float, list[int]]:
    """The server's start time (a change means it restarted mid-run) and the backends serving ``names``."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT extract(epoch FROM pg_postmaster_start_time())::float8, "
            "coalesce(array_agg(pid), '{}') FROM pg_stat_activity "
            "WHERE datname = ANY(%s) AND pid <> pg_backend_pid()",
            (list(names),),
        ).fetchone()
    assert row is not None
    return float(row[0]), [int(pid) for pid in row[1]]


def workflows_left(sys_url: str) -> tuple[int, int]:
    """(pending, failed) workflows, from DBOS's documented ``dbos.workflow_status`` table."""
    with psycopg.connect(sys_url) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE status IN ('PENDING', 'ENQUEUED')), count(*) FILTER (WHERE status = 'ERROR')"
            " FROM dbos.workflow_status"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


# --- load ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PeerOptions:
    rate: float
    duration: float
    skus: int
    grace: float
    admin_url: str
    app_db: str = "bench_dbos"
    sys_db: str = "bench_dbos_sys"
    app_pool: int = 20
    sys_pool: int = 20

    @property
    def app_url(self) -> str:
        return database_url(self.admin_url, self.app_db)

    @property
    def sys_url(self) -> str:
        return database_url(self.admin_url, self.sys_db)


@dataclass
class LoadResult:
    started: float
    offered: int
    placed: int
    failed: int
    unfinished: int
    pacer_lag_ms: float
    cpu_s: float
    db_cpu_s: float
    db_restarted: bool


def prepare_orders(skus: int, count: int) -> list[tuple[str, str]]:
    """(workflow id, canonical JSON) of the first ``count`` orders, built before the clock starts."""
    stream = Catalogue(skus=skus).orders(f"dbos-{int(time.time())}")
    out = []
    for _ in range(count):
        external, payload = next(stream)
        out.append((order_id_for(payload["channel"], external), json.dumps(payload, separators=(",", ":"))))
    return out


def offer(journey: Journey, orders: Sequence[tuple[str, str]], rate: float, deadline: float) -> tuple[int, float]:
    """Start one workflow every ``1/rate`` s without waiting for it to run; (started, worst lag in ms).

    ``DBOS.start_workflow`` returns once the workflow is durably recorded and runs it on
    DBOS's executor threads, but that recording competes with the running workflows for
    the GIL and the system database's pool, so under overload the pacer falls behind.
    Each order's publish time is therefore its scheduled time, not the moment it got in
    (no coordinated omission), and orders still unstarted at ``deadline`` (monotonic)
    are never started.
    """
    start, wall, worst = time.monotonic(), time.time(), 0.0
    for i, (order_id, body) in enumerate(orders):
        due = start + i / rate
        if (wait := due - time.monotonic()) > 0:
            time.sleep(wait)
        elif time.monotonic() >= deadline:
            return i, worst * 1000
        worst = max(worst, time.monotonic() - due)
        with SetWorkflowID(order_id):
            DBOS.start_workflow(journey, order_id, body, wall + i / rate)
    return len(orders), worst * 1000


def drain(sys_url: str, deadline: float) -> tuple[int, int]:
    """Wait until no workflow is pending, at most until ``deadline`` (monotonic); (still pending, failed)."""
    while True:
        pending, failed = workflows_left(sys_url)
        if pending == 0 or time.monotonic() >= deadline:
            return pending, failed
        time.sleep(0.25)


def _cpu_of(pids: Iterable[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        out[pid] = t.user + t.system
    return out


def drive(journey: Journey, options: PeerOptions) -> LoadResult:
    """Offer the load, wait (bounded) for the in-flight workflows; CPU of this process and of its backends."""
    orders = prepare_orders(options.skus, round(options.rate * options.duration))
    me, names = psutil.Process(), (options.app_db, options.sys_db)
    server_before, pids = server_state(options.app_url, names)
    db_before, cpu_before = _cpu_of(pids), sum(me.cpu_times()[:2])
    started, deadline = time.time(), time.monotonic() + options.duration + options.grace
    placed, lag_ms = offer(journey, orders, options.rate, deadline)
    pending, failed = drain(options.sys_url, deadline)
    cpu = sum(me.cpu_times()[:2]) - cpu_before
    server_after, pids = server_state(options.app_url, names)
    db_cpu = sum(t - db_before.get(pid, 0.0) for pid, t in _cpu_of(pids).items())
    if server_after != server_before:
        log.warning("PostgreSQL restarted during the run: the figures are not comparable")
    if failed:
        log.warning("%d workflows failed (status ERROR in dbos.workflow_status)", failed)
    return LoadResult(started, len(orders), placed, failed, pending, lag_ms, cpu, db_cpu, server_after != server_before)


# --- figures ------------------------------------------------------------------------------------
class Percentiles(TypedDict):
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None


def percentiles(values_ms: Sequence[float]) -> Percentiles:
    """p50/p95/p99/max in ms (inclusive quantiles, as ``bench/measure.py`` computes them for the OMS)."""
    if not values_ms:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    ordered = sorted(values_ms)
    cut = statistics.quantiles(ordered, n=100, method="inclusive") if len(ordered) > 1 else ordered * 99
    return {"p50": round(cut[49], 1), "p95": round(cut[94], 1), "p99": round(cut[98], 1), "max": round(ordered[-1], 1)}


_FIGURES = """
SELECT extract(epoch FROM intake_at)::float8 AS intake,
       extract(epoch FROM reserved_at)::float8 AS reserved,
       extract(epoch FROM shipped_at)::float8 AS shipped
FROM orders
"""


def figures(options: PeerOptions, load: LoadResult) -> dict[str, Any]:
    with psycopg.connect(options.app_url) as conn:
        rows: list[tuple[float, float | None, float | None]] = conn.execute(_FIGURES).fetchall()
    reserved = [(r - i) * 1000 for i, r, _ in rows if r is not None]
    shipped = [(s - i) * 1000 for i, _, s in rows if s is not None]
    # As bench/run.py counts it for the OMS: shipped by the end of the offered window (+1 s), per second.
    in_window = sum(1 for _, _, s in rows if s is not None and s <= load.started + options.duration + 1)
    return {
        "system": "dbos",
        "offered_rate": options.rate,
        "duration_s": options.duration,
        "offered": load.offered,
        "placed": load.placed,
        "reserved": len(reserved),
        "shipped": len(shipped),
        "not_finished": load.offered - len(shipped),
        "failed": load.failed,
        "achieved_rate": round(in_window / options.duration, 1),
        "latency_ms": {"reserved": percentiles(reserved), "shipped": percentiles(shipped)},
        "cpu_s": round(load.cpu_s, 2),
        "db_cpu_s": round(load.db_cpu_s, 2),
        "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "pacer_lag_ms_max": round(load.pacer_lag_ms, 1),
        "db_restarted": load.db_restarted,
        "dbos_version": version("dbos"),
    }


# --- running ---------------------------------------------------------------------------------------
def dbos_config(sys_url: str, sys_pool: int) -> DBOSConfig:
    return {
        "name": "bench-dbos-peer",
        "system_database_url": sys_url,
        "sys_db_pool_size": sys_pool,
        "log_level": "WARNING",
    }


def run_peer(options: PeerOptions) -> dict[str, Any]:
    """One independent run: fresh databases, DBOS launched, load, figures."""
    recreate_databases(options.admin_url, (options.app_db, options.sys_db))
    create_schema_and_seed(options.app_url, options.skus)
    engine_kwargs = {"pool_size": options.app_pool, "max_overflow": 0}
    ds = SQLAlchemyDatasource.create(options.app_url, engine_kwargs=engine_kwargs)
    journey = build_journey(ds)
    DBOS(config=dbos_config(options.sys_url, options.sys_pool))
    DBOS.launch()
    try:
        load = drive(journey, options)
        if load.unfinished:  # abandoned at the deadline: their failures at shutdown are expected noise
            log.warning("%d workflows still pending at the deadline are abandoned", load.unfinished)
            logging.getLogger("dbos").setLevel(logging.CRITICAL)
    finally:
        DBOS.destroy()
        ds.engine.dispose()
    return figures(options, load)


def summary(result: dict[str, Any]) -> str:
    lat = result["latency_ms"]
    return (f"dbos {result['dbos_version']}: offered {result['offered_rate']}/s for {result['duration_s']}s, "
            f"offered {result['offered']} placed {result['placed']} shipped {result['shipped']} ({result['achieved_rate']}/s), "
            f"reserved p50/p99 {lat['reserved']['p50']}/{lat['reserved']['p99']} ms, "
            f"shipped p50/p95/p99/max {lat['shipped']['p50']}/{lat['shipped']['p95']}/{lat['shipped']['p99']}/"
            f"{lat['shipped']['max']} ms, not finished {result['not_finished']}, "
            f"pacer lag {result['pacer_lag_ms_max']} ms, cpu {result['cpu_s']} s (db {result['db_cpu_s']} s), "
            f"rss {result['rss_mb']} MB")  # fmt: skip


def run_steps(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every rate of ``--steps`` in a fresh subprocess (fresh DBOS, CPU and RSS figures per run)."""
    results = []
    for rate in (float(r) for r in args.steps.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "step.json"
            cmd = [sys.executable, __file__, "--rate", str(rate), "--duration", str(args.duration),
                   "--skus", str(args.skus), "--grace", str(args.grace), "--json", str(out)]  # fmt: skip
            subprocess.run(cmd, check=True)
            results.append(json.loads(out.read_text()))
    return results


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rate", type=float, default=100.0, help="orders started per second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of offered load")
    parser.add_argument("--skus", type=int, default=10_000, help="catalogue size")
    parser.add_argument(
        "--grace",
        type=float,
        default=30.0,
        help="seconds after the window to start late orders and finish in-flight ones",
    )
    parser.add_argument("--steps", help="comma-separated rates, each run in its own subprocess")
    parser.add_argument("--json", type=Path, help="write the result (a list with --steps) here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    result: Any
    if args.steps:
        result = run_steps(args)
    else:
        options = PeerOptions(rate=args.rate, duration=args.duration, skus=args.skus, grace=args.grace,
                              admin_url=os.environ.get("DATABASE_URL", DEFAULT_ADMIN_URL))  # fmt: skip
        result = run_peer(options)
        print(summary(result))
        print(json.dumps(result, separators=(",", ":")))  # last line: the JSON, as bench/run.py's run_json reads
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
