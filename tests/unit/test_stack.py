"""deploy/stack.py pieces that need no running stack."""

from __future__ import annotations

from tests import support


def test_kafka_cluster_ids_never_start_with_a_dash() -> None:
    """kafka-storage would read such an id as an option and refuse to format (one in 64 draws)."""
    stack = support.stack()
    ids = {stack.kafka_cluster_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(i) == 22 for i in ids)
