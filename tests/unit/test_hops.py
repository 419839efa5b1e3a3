"""The benchmark's hop decomposition (bench/hops.py): pure arithmetic over sent messages."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import hops


def _sent(id: str, type: str, cause: str | None, emitted: float, sent: float) -> hops.Sent:
    return hops.Sent(id, f"oms.{type}.v1", cause, emitted, sent)


def test_each_message_splits_into_the_consumers_share_and_the_outboxs_share() -> None:
    sent = {
        m.id: m
        for m in (
            _sent("a", "order.place-order", None, 9.0, 10.000),
            _sent("b", "inventory.reserve-stock", "a", 10.030, 10.045),
            _sent("c", "inventory.stock-reserved", "b", 10.055, 10.060),
            _sent("d", "order.status-changed", "c", 10.100, 10.110),
        )
    }
    found = hops.edges(sent)
    assert set(found) == {
        ("order.place-order", "inventory.reserve-stock"),
        ("inventory.reserve-stock", "inventory.stock-reserved"),
        ("inventory.stock-reserved", "order.status-changed"),
    }
    first = found[("order.place-order", "inventory.reserve-stock")]
    assert round(first["consume"][0], 3) == 30.0  # cause sent at 10.000, emitted at 10.030
    assert round(first["publish"][0], 3) == 15.0  # emitted at 10.030, sent at 10.045
    last = found[("inventory.stock-reserved", "order.status-changed")]
    assert round(last["consume"][0], 3) == 40.0


def test_a_message_whose_cause_was_not_read_is_left_out() -> None:
    sent = {"b": _sent("b", "inventory.reserve-stock", "not-in-the-window", 10.0, 10.1)}
    assert hops.edges(sent) == {}


def test_percentiles_of_one_or_no_value() -> None:
    """hops summarises with the benchmark's percentiles (seconds in, milliseconds out)."""
    from measure import percentiles

    assert percentiles([0.007])["p99"] == 7.0
    assert percentiles([])["p50"] != percentiles([])["p50"]  # NaN: nothing measured
    assert percentiles([v / 1000 for v in range(1, 101)])["p50"] == 50.5


def test_consumer_rates_are_differences_over_the_step() -> None:
    import run

    phases = dict.fromkeys(("begin", "prepare", "handlers", "writes", "commit"), 0.0)
    before = {"order": {"batches": 10, "handled": 100, "busy_s": 1.0, "phases_s": phases}}
    after = {
        "order": {
            "batches": 110,
            "replayed": 3,
            "handled": 2100,
            "busy_s": 6.0,
            "phases_s": {**phases, "begin": 0.2, "commit": 0.3},
        },
        "inventory": {"batches": 5, "handled": 5, "busy_s": 0.1, "phases_s": phases},  # started mid-step
    }
    rates = run.consumer_rates(before, after, elapsed_s=10.0)
    assert set(rates) == {"order"}
    order = rates["order"]
    assert order["batches_per_s"] == 10.0
    assert order["messages_per_batch"] == 20.0
    assert order["busy_pct"] == 50.0
    assert order["replayed"] == 3  # "replayed" missing before: read as 0
    assert order["begin_ms"] == 2.0
    assert order["commit_ms"] == 3.0
    assert order["writes_ms"] == 0.0


def test_latency_over_time_splits_a_step_by_publish_window() -> None:
    """Orders of a step, 10 s windows: the slow window shows, an order never reserved is counted apart."""
    import report
    from measure import over_time

    published = {"a": 100.0, "b": 105.0, "c": 112.0, "d": 119.0, "e": 125.0}
    times = {
        "a": {"reserved": 100.020},
        "b": {"reserved": 105.040},
        "c": {"reserved": 113.500},  # the slow window
        "d": {"accepted": 119.1},  # never reserved
        "e": {"reserved": 125.030},
    }
    rows = over_time(published, times)
    assert [(r["start_s"], r["orders"], r["missing"]) for r in rows] == [(0.0, 2, 0), (10.0, 2, 1), (20.0, 1, 0)]
    assert rows[1]["p99"] == 1500.0
    assert rows[0]["p50"] == 30.0
    assert over_time({}, {}) == []
    step = {"offered_rate": 300.0, "duration_s": 600.0, "reserved_over_time": rows}
    table = report._over_time_table([step, {**step, "duration_s": 60.0}])
    assert table.count("| 10 | 2 | 1500.0 | 1500.0 | 1 |") == 1  # long steps only
    dated = report._over_time_table([{**step, "started_at": "2026-11-26T21:58:40+00:00"}])
    assert any("which was at 2026-11-26T21:58:40+00:00" in line for line in dated)
