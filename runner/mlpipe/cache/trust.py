"""Who may read and write which registry repository: no cache poisoning from untrusted refs.

`policy` is pure; `context_from_env` reads the GitHub Actions environment and event payload at the edge.
Protected runs (default branch, tags, GITHUB_REF_PROTECTED, a configured list) read and write the trusted
repository and accept only entries that protected runs produced. A same-repository PR reads those plus its
own `<repo>/pr-<n>` scope and writes that scope; other branches likewise get `<repo>/branch-<name>`. Fork PRs
and untrusted events read only. A dirty tree never writes unless asked.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Mapping
from typing import Any, Literal

from mlpipe.frozen import frozen

CacheMode = Literal["auto", "read-write", "read", "off"]
MODES: tuple[str, ...] = ("auto", "read-write", "read", "off")

WRITING_EVENTS = frozenset({"push", "schedule", "workflow_dispatch", "release", "merge_group", "local"})
"""Events whose code is the repository's own; `pull_request` writes only to its PR scope."""


@frozen(kw_only=True)
class RunContext:
    event: str
    """A GitHub event name, or "local" outside GitHub Actions."""
    ref: str | None
    default_branch: str | None = None
    ref_protected: bool = False
    pr_number: int | None = None
    fork: bool = False
    dirty: bool = False
    protected_refs: tuple[str, ...] = ()
    """Extra fnmatch patterns of protected refs (MLPIPE_PROTECTED_REFS)."""


@frozen(kw_only=True)
class CachePolicy:
    read: tuple[str, ...]
    """Repositories to look in, in order; the trusted one first."""
    write: str | None
    trusted: str
    protected: bool
    """This run is trusted: its entries are marked protected."""
    why: str
    """Why the run writes where it does, or not at all (shown once in the run's output)."""

    def accepts(self, repo: str, trust: Mapping[str, Any]) -> bool:
        """Entries of the trusted repository count only if a protected run produced them."""
        return repo != self.trusted or trust.get("protected") is True


def is_protected(ctx: RunContext) -> bool:
    ref = ctx.ref or ""
    if ctx.event not in WRITING_EVENTS:
        return False
    if ctx.ref_protected or ref.startswith("refs/tags/"):
        return True
    if ctx.default_branch and ref == f"refs/heads/{ctx.default_branch}":
        return True
    return any(fnmatch.fnmatchcase(ref, pattern) for pattern in ctx.protected_refs)


def scope_name(ctx: RunContext) -> str | None:
    """The repository suffix of an unprotected run's own scope."""
    if ctx.pr_number is not None:
        return f"pr-{ctx.pr_number}"
    ref = ctx.ref or ""
    if ref.startswith("refs/heads/"):
        branch = ref.removeprefix("refs/heads/")
        slug = re.sub(r"[^a-z0-9]+", "-", branch.lower()).strip("-")[:48].strip("-") or "x"
        if slug != branch:  # two branches must never share a scope
            slug += "-" + hashlib.sha256(branch.encode()).hexdigest()[:8]
        return f"branch-{slug}"
    return None


def policy(
    ctx: RunContext, repo: str, *, mode: CacheMode = "auto", allow_dirty_push: bool = False
) -> CachePolicy:
    protected = is_protected(ctx)
    if mode == "off":
        return CachePolicy(read=(), write=None, trusted=repo, protected=protected, why="--cache-mode off")
    own = None if protected else scope_name(ctx)
    scoped = f"{repo}/{own}" if own else None
    read = (repo,) if scoped is None else (repo, scoped)
    write: str | None
    if protected:
        write, why = repo, "protected ref: writes the trusted repository"
    elif ctx.event in WRITING_EVENTS or (ctx.event == "pull_request" and not ctx.fork):
        write = scoped
        why = f"unprotected ref: writes its own scope {scoped}" if scoped else "no branch or PR: read-only"
    else:
        kind = "a pull request from a fork" if ctx.fork else f"event {ctx.event!r}"
        write, why = None, f"{kind} is untrusted: read-only"
    if mode == "read-write" and write is None:
        write, why = scoped, f"--cache-mode read-write: writes {scoped}"
    if mode == "read":
        write, why = None, "--cache-mode read"
    if write is not None and ctx.dirty and not allow_dirty_push:
        write, why = None, "uncommitted changes: not pushing (--allow-dirty-push to push anyway)"
    return CachePolicy(read=read, write=write, trusted=repo, protected=protected, why=why)
