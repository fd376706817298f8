"""Text as people read it, shared by every part: sizes in messages, aligned tables."""

from __future__ import annotations

from collections.abc import Sequence

UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def human_size(n: int) -> str:
    power = 0
    while n >= 1024 ** (power + 1) and power < len(UNITS) - 1:
        power += 1
    return f"{n} B" if power == 0 else f"{n / 1024**power:.1f} {UNITS[power]}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)
    return "\n".join(lines)


# GitHub Actions workflow commands (`::error file=…,line=…::message`): the runner decodes these escapes, so
# untrusted text (a step's error, a file's name) can neither end the command nor start another line.
def escape_data(text: str) -> str:
    """A workflow command's message."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value (`file=`, `title=`): `:` and `,` would end it."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")
