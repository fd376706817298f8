"""`echo`: `click.echo(message, err=err)` for the plain command path, which does not import click."""

from __future__ import annotations

import codecs
import sys


def echo(message: str, *, err: bool = False) -> None:
    """Write `message` and a newline to stdout (stderr with `err`) and flush, as `click.echo` does.

    Text click would change (ANSI escapes, which it strips from output that is not a terminal) or a stream it
    would wrap or replace (none, one without an encoding and error handler or encoding ASCII, Windows' console)
    goes through `click.echo` itself, so the output is the same.
    """
    stream = sys.stderr if err else sys.stdout
    if (
        stream is None
        or "\x1b" in message
        or sys.platform == "win32"
        or getattr(stream, "errors", None) is None
        or _misconfigured(getattr(stream, "encoding", None))
    ):
        import click

        click.echo(message, err=err)
        return
    stream.write(message + "\n")
    stream.flush()


def _misconfigured(encoding: str | None) -> bool:
    """click's `_stream_is_misconfigured`: a stream without an encoding, or encoding ASCII."""
    try:
        return codecs.lookup(encoding or "ascii").name == "ascii"
    except LookupError:
        return False
