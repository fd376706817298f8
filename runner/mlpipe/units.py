"""Sizes as people read them in messages."""

from __future__ import annotations

UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def human_size(n: int) -> str:
    power = 0
    while n >= 1024 ** (power + 1) and power < len(UNITS) - 1:
        power += 1
    return f"{n} B" if power == 0 else f"{n / 1024**power:.1f} {UNITS[power]}"
