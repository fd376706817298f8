"""Where an output may be checked out (`outputs.NAME.path`): inside the workspace, never into `.git/` or
`.mlpipe/`, and never through a symbolic link that leads out of the workspace or into either.

mlpipe writes there itself, so a link committed in the repository (`out -> /etc`, `out -> ../..`,
`out -> .git/hooks`) must not carry its writes elsewhere. Checked when the file is loaded, and again just
before a checkout (a step may have made a link since).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from mlpipe.paths import STATE_DIR

RESERVED = {".git": "git's own data", STATE_DIR: "mlpipe's runs and store"}
FIX = "check the output out to a path in the work tree: mlpipe never writes into .git/ or .mlpipe/"


def destination_problem(root: Path, rel: str) -> tuple[str, str] | None:
    """(message, fix) when the workspace-relative, normalized path `rel` must not receive a checkout."""
    if rel == ".":
        return "an output cannot replace the workspace root", "name a file or directory inside the workspace"
    reserved = _reserved(PurePosixPath(rel).parts)
    if reserved is not None:
        return f"path {rel!r} is inside {reserved}/, {RESERVED[reserved]}", FIX
    return _link_problem(root, rel)


def _link_problem(root: Path, rel: str) -> tuple[str, str] | None:
    """Each existing link on the way, the last part included, must resolve inside the workspace and outside the
    reserved directories (followed as the kernel follows it: chains, `..` after a link). The root is resolved
    only when there is a link to follow (a run asks this for every output path, and again from the cache)."""
    parts = PurePosixPath(rel).parts
    current = root
    for count, part in enumerate(parts, 1):
        current = current / part
        if not current.is_symlink():
            continue
        top = root.resolve()
        link = "/".join(parts[:count])
        try:
            shown = f"{link!r} -> {os.readlink(current)!r}"
        except OSError:
            shown = repr(link)
        fix = f"remove the link {link!r} or make it a directory, or choose another path"
        try:
            target = Path(os.path.realpath(current, strict=True))
        except FileNotFoundError:  # dangling: where it points is where a write through it would go
            target = Path(os.path.realpath(current))
        except OSError:  # a loop: nothing can be written through it
            return f"path {rel!r} goes through the symbolic link {shown}, which loops", fix
        if not target.is_relative_to(top):
            return (
                f"path {rel!r} goes through the symbolic link {shown}, which leads outside the workspace",
                fix,
            )
        reserved = _reserved(target.relative_to(top).parts)
        if reserved is not None:
            return f"path {rel!r} goes through the symbolic link {shown}, which leads into {reserved}/", fix
    return None


def _reserved(parts: tuple[str, ...]) -> str | None:
    """The reserved directory a path goes into, compared case-insensitively (`.GIT` on macOS is `.git`)."""
    for part in parts:
        for name in RESERVED:
            if part.casefold() == name:
                return name
    return None
