"""Ignore files as git reads them, with `.amlignore` replacing a directory's `.gitignore` (as Azure ML does).

Pattern matching is dulwich's (`dulwich.ignore.Pattern`, built on its port of git's wildmatch); reading the
file and deciding between rule files follow git's `dir.c`, because dulwich's reader differs from git:

- `read_ignore_patterns` turns every `\\ ` into a space before matching, so `a\\\\ b` (an escaped backslash,
  then a space) stops matching the file `a\\ b`, and it stops trimming trailing spaces at `\\\\ `; git only
  trims unescaped trailing spaces and leaves escapes to wildmatch (`trim_trailing_spaces`).
- it strips every trailing CR, skips whitespace-only lines and keeps a UTF-8 BOM as part of the first
  pattern; git strips one CR before LF, keeps a line like a lone tab as a pattern and skips the BOM.

and its pattern translation differs from git's too (found by fuzzing against `git ls-files --others`;
tests/git/test_ignore.py pins each case). `as_dulwich_patterns` rewrites a pattern so dulwich agrees:

- a run of three or more `*` forming a whole path component (`***/x`) is a plain `*` to dulwich; git's
  wildmatch treats any run of stars between slashes as `**`. We shorten each run to two stars.
- `**\\/` is `**/` to git's wildmatch (though it must span a directory), and `\\/` elsewhere is '/';
  dulwich sees a component "**/" that is not `**`. We write `\\/` as '/' and `**\\/` as `*/**/`, except
  at the start of a path pattern, where git can never match it.
- a pattern ending in `//`, or in an unescaped backslash (after git strips one trailing slash), or a
  path pattern starting with `\\/`, never matches in git; dulwich strips all slashes or matches a literal
  backslash or slash. We drop such patterns.
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


def parse_patterns(data: bytes, *, source: str = "<patterns>") -> list[Pattern]:
    """The patterns of one ignore file, in file order (git's `add_patterns_from_buffer`)."""
    data = data.removeprefix(_BOM)
    patterns = []
    for raw in data.split(b"\n"):
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if not line or line.startswith(b"#"):
            continue
        for rewritten in as_dulwich_patterns(trim_trailing_spaces(line)):
            try:
                patterns.append(Pattern(rewritten))
            except MalformedPattern:
                # wildmatch() aborts on these, so git's pattern matches nothing; keep reading the file.
                logger.warning("%s: ignoring malformed pattern %r", source, line)
    return patterns


def as_dulwich_patterns(line: bytes) -> list[bytes]:
    """Patterns that dulwich matches exactly as git matches the (trimmed) `line`; [] if it never matches.

    Works around the deviations listed in the module docstring, reading the pattern as git's
    `parse_path_pattern` and `match_pathname` do.
    """
    negate = b"!" if line.startswith(b"!") else b""
    body = line[len(negate) :]
    suffix = b"/" if body.endswith(b"/") else b""
    body = body.removesuffix(b"/")  # git strips one slash and remembers "directory only"
    anchor = b""
    bodies = [body]
    if b"/" in body:  # matched against the path relative to the rule file's directory
        if body.startswith(b"\\/"):
            return []  # wildmatch would need a '/' at the start of a relative path
        if body.startswith(b"/"):
            anchor, body = b"/", body[1:]
        bodies = _expand_prefix_stars(body)
        if bodies != [body]:
            anchor = b"/"
    return [
        negate + anchor + _normalize(b) + suffix
        for b in bodies
        # paths never end in '/' (nor in a lone backslash, which wildmatch rejects)
        if b and not b.endswith(b"/") and not _ends_in_lone_backslash(b)
    ]


def _ends_in_lone_backslash(pattern: bytes) -> bool:
    return (len(pattern) - len(pattern.rstrip(b"\\"))) % 2 == 1


_PREFIX_STARS = re.compile(rb"([^*?\\\[]*[^*?\\\[/])\*\*+(/|\\/|)(.*)", re.DOTALL)
"""git's literal prefix (up to the first of `*?[\\`) not ending in '/', then `**` ending the pattern or
followed by a slash: after the prefix step, wildmatch sees that `**` at its start, so it spans directories."""


def _expand_prefix_stars(body: bytes) -> list[bytes]:
    """`P**/S` is `PS` or `P*/**/S`; `P**\\/S` only the latter; `P**` is `P*` or `P*/**`."""
    m = _PREFIX_STARS.fullmatch(body)
    if m is None:
        return [body]
    prefix, slash, rest = m.groups()
    if not slash:
        if rest:
            return [body]  # "P**x": the stars are a plain '*' to git, as to dulwich
        return [prefix + b"*", prefix + b"*/**"]
    # wildmatch lets "**/" match no directory at all, but not "**\\/" (it only checks for a plain '/')
    spans = [prefix + b"*/**/" + rest]
    return [prefix + rest, *spans] if slash == b"/" else spans


def _normalize(pattern: bytes) -> bytes:
    """The same pattern to git's wildmatch, written so dulwich's translation agrees with it.

    Runs of `*` are shortened to two. `\\/` becomes '/', except after a `**` that starts a component:
    wildmatch takes `**\\/` as `**/` that must span at least one directory, which is `*/**/`.
    """
    if b"***" not in pattern and b"\\/" not in pattern:
        return pattern
    out = bytearray()
    run = 0  # unescaped stars just written
    after_slash = True  # the last byte was a '/' (or nothing yet)
    run_starts_component = False
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == 0x5C:  # a backslash and the byte it escapes
            pair = pattern[i : i + 2]
            if pair == b"\\/":
                if run >= 2 and run_starts_component:
                    out[-2:] = b"*/**"
                out += b"/"
            else:
                out += pair
            run, after_slash = 0, pair == b"\\/"
            i += 2
            continue
        if c == 0x2A:
            if run == 0:
                run_starts_component = after_slash
            run += 1
            if run <= 2:
                out.append(c)
        else:
            out.append(c)
            run = 0
        after_slash = c == 0x2F
        i += 1
    return bytes(out)


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
