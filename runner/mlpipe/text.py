"""Text as people read it, shared by every part: sizes in messages, aligned tables."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """'did you mean X?' for a close name, else the list of valid names (compared case-insensitively)."""
    by_lower = {choice.lower(): choice for choice in choices}
    close = close_matches(name.lower(), list(by_lower), n=1)
    if close:
        return f"did you mean {by_lower[close[0]]!r}?"
    return f"expected one of: {', '.join(by_lower.values())}" if by_lower else ""


def close_matches(word: str, choices: Sequence[str], n: int) -> list[str]:
    """difflib's suggestions, imported only when there is a mistake to suggest a fix for."""
    import difflib

    return difflib.get_close_matches(word, choices, n=n)


def printable(text: str) -> str:
    """`text` as one printable line: each other character as a Python literal writes it (`\\n`, `\\x1b`), so a
    path or value from a repository or a registry cannot break or forge the lines around it."""
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


# GitHub Actions workflow commands (`::error file=…,line=…::message`): the runner decodes these escapes, so
# untrusted text (a step's error, a file's name) can neither end the command nor start another line.
def escape_data(text: str) -> str:
    """A workflow command's message."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value (`file=`, `title=`): `:` and `,` would end it."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")
