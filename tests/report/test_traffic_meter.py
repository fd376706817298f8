"""The network meter's line: bytes moved since it started, and the rate over its last seconds."""

from __future__ import annotations

from mlpipe.report.traffic import TrafficMeter


def test_the_meter_counts_from_its_start_and_rates_over_a_window() -> None:
    totals = [(100, 5 << 20)]  # what moved before the meter existed does not count
    now = [0.0]
    meter = TrafficMeter(lambda: totals[0], lambda: now[0])

    assert meter.line() == ""
    now[0], totals[0] = 1.0, (100, (5 << 20) + (4 << 20))
    assert meter.line() == "network: ↓ 4.0 MiB (4.0 MiB/s)"
    now[0], totals[0] = 2.0, (100 + (1 << 20), (5 << 20) + (8 << 20))
    assert meter.line() == "network: ↓ 8.0 MiB (4.0 MiB/s) ↑ 1.0 MiB (512.0 KiB/s)"
    now[0] = 10.0  # a stall: the rate falls to nothing, the bytes stay
    assert meter.line() == "network: ↓ 8.0 MiB (0 B/s) ↑ 1.0 MiB (0 B/s)"
