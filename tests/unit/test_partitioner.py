"""The producer's partitioner: the same partition as aiokafka's default (and Java's) for every key."""

from __future__ import annotations

import os

from aiokafka.partitioner import DefaultPartitioner

from oms_shared.kafka import KeyHashPartitioner


def test_same_partition_as_the_default_for_every_key_and_partition_count() -> None:
    """Keys of several shapes and lengths, asked twice (hashed, then remembered), over 1 to 24 partitions."""
    keys = [os.urandom(n) for n in range(40)] + [f"order-{i}".encode() for i in range(500)]
    cached, default = KeyHashPartitioner(size=100), DefaultPartitioner()
    for count in (1, 6, 7, 24):
        partitions = list(range(count))
        for key in keys + keys:
            assert cached(key, partitions, partitions) == default(key, partitions, partitions)


def test_no_key_goes_to_an_available_partition() -> None:
    """Without a key any available partition may be chosen, never an unavailable one."""
    chosen = {KeyHashPartitioner()(None, [0, 1, 2, 3], [1, 3]) for _ in range(50)}
    assert chosen <= {1, 3}
