"""The benchmark's reading of the broker's garbage collections (bench/measure.py): pure parsing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from measure import JvmGc, parse_jstat_gcutil

# `jstat -gcutil <pid>` of the broker at 300 orders/s (session 18), as JDK 17 prints it.
G1_OUTPUT = """\
  S0     S1     E      O      M     CCS    YGC     YGCT     FGC    FGCT     CGC    CGCT       GCT
  0.00  91.02   4.23  64.08  96.90  89.73    848    13.422     0     0.000    24     0.158    13.580
"""


def test_collections_and_their_total_pause() -> None:
    assert parse_jstat_gcutil(G1_OUTPUT) == JvmGc(pauses=848 + 0 + 24, pause_s=13.580)


def test_a_collector_without_concurrent_cycles() -> None:
    text = "  S0     S1     E      O      M     CCS    YGC     YGCT    FGC    FGCT     GCT\n"
    text += "  -      -   12.00  40.00  95.00  90.00     7    0.050     1    0.100    0.150\n"
    assert parse_jstat_gcutil(text) == JvmGc(pauses=8, pause_s=0.150)


def test_the_parallel_collector_prints_no_concurrent_cycles() -> None:
    # The broker on -XX:+UseParallelGC (session 19): CGC and CGCT are "-".
    text = "  S0     S1     E      O      M     CCS    YGC     YGCT     FGC    FGCT     CGC    CGCT       GCT\n"
    text += " 58.85   0.00   5.67  18.23  98.18  93.03     44     0.525     2     0.048     -         -     0.573\n"
    assert parse_jstat_gcutil(text) == JvmGc(pauses=46, pause_s=0.573)


def test_output_that_is_not_jstat_is_refused() -> None:
    with pytest.raises((KeyError, ValueError)):
        parse_jstat_gcutil("12345 not found\n")
