"""Ignore files as git reads them, with `.amlignore` replacing a directory's `.gitignore` (as Azure ML does).

Pattern matching is dulwich's (`dulwich.ignore.Pattern`, built on its port of git's wildmatch); reading the
file and deciding between rule files follow git's `dir.c`, because dulwich's reader differs from git:

- `read_ignore_patterns` turns every `\\ ` into a space before matching, so `a\\\\ b` (an escaped backslash,
  then a space) stops matching the file `a\\ b`, and it stops trimming trailing spaces at `\\\\ `; git only
  trims unescaped trailing spaces and leaves escapes to wildmatch (`trim_trailing_spaces`).
- it strips every trailing CR, skips whitespace-only lines and keeps a UTF-8 BOM as part of the first
  pattern; git strips one CR before LF, keeps a line like a lone tab as a pattern and skips the BOM.

and its pattern translation (checked against `git ls-files --others` by tests/integration/test_snapshot.py):

- a run of three or more `*` forming a whole path component (`***/x`) is a plain `*` to dulwich; git's
  wildmatch treats any run of stars between slashes as `**`. We collapse each run to at most two stars,
  which means the same to git and makes dulwich see the `**`.
- a pattern ending in `//`: git strips one slash for "directory only" and the rest can never match (paths
  have no trailing slash); dulwich strips every slash and matches. We drop such patterns.
- a pattern ending in an unescaped backslash: git's wildmatch never matches it; dulwich matches a literal
  backslash. We drop such patterns.
- git's `match_pathname` compares a pattern's literal prefix first and hands wildmatch only the rest, so
  in `a**/b` or `x/a**` the `**` starts wildmatch's pattern and spans directories (`ax/y/b` is matched);
  dulwich reads it as `a*/b`. We rewrite such a pattern into dulwich patterns meaning what git does.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from collections.abc import Sequence

from dulwich.ignore import Pattern
from dulwich.wildmatch import MalformedPattern

logger = logging.getLogger(__name__)

RULE_FILES = (".amlignore", ".gitignore")
"""Per directory, the first of these that exists is the one read."""

_BOM = b"\xef\xbb\xbf"


def trim_trailing_spaces(line: bytes) -> bytes:
    """Drop unescaped trailing spaces, exactly as git's `trim_trailing_spaces` does."""
    last_space = -1
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c == 0x20:
            if last_space < 0:
                last_space = i
        elif c == 0x5C:  # a backslash escapes the next byte, whatever it is
            i += 1
            if i >= n:
                return line
            last_space = -1
        else:
            last_space = -1
        i += 1
    return line[:last_space] if last_space >= 0 else line


def collapse_stars(pattern: bytes) -> bytes:
    """Shorten every unescaped run of `*` to at most two; git's wildmatch reads them the same."""
    if b"***" not in pattern:
        return pattern
    out = bytearray()
    run = 0
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == 0x5C:  # backslash: copy it with the byte it escapes
            out += pattern[i : i + 2]
            i += 2
            run = 0
            continue
        run = run + 1 if c == 0x2A else 0
        if run <= 2:
            out.append(c)
        i += 1
    return bytes(out)


def _ends_in_lone_backslash(line: bytes) -> bool:
    return (len(line) - len(line.rstrip(b"\\"))) % 2 == 1


def parse_patterns(data: bytes, *, source: str = "<patterns>") -> list[Pattern]:
    """The patterns of one ignore file, in file order (git's `add_patterns_from_buffer`)."""
    data = data.removeprefix(_BOM)
    patterns = []
    for raw in data.split(b"\n"):
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if not line or line.startswith(b"#"):
            continue
        line = trim_trailing_spaces(line)
        if not line or line.removeprefix(b"!").endswith(b"//") or _ends_in_lone_backslash(line):
            continue
        for rewritten in expand_prefix_stars(collapse_stars(line)):
            try:
                patterns.append(Pattern(rewritten))
            except MalformedPattern:
                # wildmatch() aborts on these, so git's pattern matches nothing; keep reading the file.
                logger.warning("%s: ignoring malformed pattern %r", source, line)
    return patterns


_PREFIX_STARS = re.compile(rb"(/?)([^*?\\\[]*[^*?\\\[/])\*\*(/.*|)", re.DOTALL)
"""A literal prefix not ending in '/', then `**` that ends the pattern or is followed by '/'."""


def expand_prefix_stars(line: bytes) -> list[bytes]:
    """Patterns that dulwich matches the way git matches `line` (see the module docstring)."""
    negate = b"!" if line.startswith(b"!") else b""
    body = line[len(negate) :]
    directory_only = b"/" if body.endswith(b"/") else b""
    body = body.removesuffix(b"/")
    if b"/" not in body:
        return [line]  # matched against the basename with no prefix step: no quirk
    m = _PREFIX_STARS.fullmatch(body)
    if m is None:
        return [line]
    prefix, rest = m.group(2), m.group(3)
    if rest:
        # "<P>**/<S>": wildmatch's "**/S" matches "S" or anything ending in "/S".
        alternatives = [b"/" + prefix + rest[1:], b"/" + prefix + b"*/**" + rest]
    else:
        alternatives = [b"/" + prefix + b"*", b"/" + prefix + b"*/**"]
    return [negate + alt + directory_only for alt in alternatives]


def read_rules(directory: str, names: Sequence[str] = RULE_FILES) -> list[Pattern]:
    """The patterns from the first rule file of `directory` that exists; [] when there is none.

    Like git (>= 2.32), a rule file that is a symlink is not followed, and counts as absent.
    """
    for name in names:
        path = f"{directory}/{name}"
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            continue
        except OSError as error:
            if error.errno in (errno.ELOOP, errno.EMLINK, errno.ENOTDIR, errno.EISDIR):
                continue
            raise
        with os.fdopen(fd, "rb") as f:
            try:
                data = f.read()
            except IsADirectoryError:
                continue
        return parse_patterns(data, source=path)
    return []


RuleStack = tuple[tuple[int, Sequence[Pattern]], ...]
"""Rule files that apply in a directory, root first: (byte length of the directory's path prefix, patterns)."""


def is_excluded(stack: RuleStack, path: bytes, is_dir: bool) -> bool:
    """Whether the rules exclude `path` (root-relative, no trailing slash), its parents being walked already.

    The deepest rule file with a matching pattern decides, and within a file the last matching pattern.
    """
    for prefix_len, patterns in reversed(stack):
        name = path[prefix_len:]
        for pattern in reversed(patterns):
            if pattern.matches(name, is_dir):
                return pattern.is_exclude
    return False
