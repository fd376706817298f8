"""Opening the store a run uses when a registry stands behind it (`--cache oci://...`), and where the run
stands for the registry's trust policy (event, ref, protection: from the GitHub Actions environment and git).

This is the wiring between cache/, git/ and github/ that cache/ itself must not import: the tiered store is
handed its `RemoteSettings` (built here from the command's `Settings`) and a `run_context` function instead
of reading the environment itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from mlpipe.cache.local import LocalStore
from mlpipe.cache.tiered import RemoteSettings, TieredStore, parse_oci_url
from mlpipe.cache.trust import MODES, CacheMode, CachePolicy, RunContext
from mlpipe.config import Settings
from mlpipe.errors import UsageError
from mlpipe.events import Sink, to_stderr


def remote_settings(settings: Settings) -> RemoteSettings | None:
    """The registry behind the local store and how to use it; None when the cache names no registry."""
    url = settings.remote_cache
    if url is None:
        return None
    host, repo = parse_oci_url(url)
    mode = settings.cache_mode
    if mode not in MODES:
        raise UsageError(f"MLPIPE_CACHE_MODE={mode!r}: expected one of {', '.join(MODES)}")
    return RemoteSettings(
        host=host,
        repo=repo,
        mode=cast(CacheMode, mode),
        plain_http=settings.plain_http,
        allow_dirty_push=settings.allow_dirty_push,
        required=settings.cache_required,
        retry_budget_s=settings.retry_budget_s,
        environ=settings.environ,
    )


def run_context(workspace_root: Path, environ: Mapping[str, str]) -> RunContext:
    """Where this run stands, read when the registry is first used."""
    from mlpipe.git.provenance import git_info

    git = git_info(workspace_root)
    return context_from_env(
        environ,
        ref=git.ref,
        dirty=git.dirty,
        local_default_branch=_remote_head(git.root) if git.in_repo else None,
    )


def context_from_env(
    environ: Mapping[str, str], *, ref: str | None, dirty: bool, local_default_branch: str | None
) -> RunContext:
    patterns = tuple(p.strip() for p in environ.get("MLPIPE_PROTECTED_REFS", "").split(",") if p.strip())
    if environ.get("GITHUB_ACTIONS") != "true":
        return RunContext(
            event="local", ref=ref, default_branch=local_default_branch, dirty=dirty, protected_refs=patterns
        )
    from mlpipe.github.context import from_env  # the one reader of the Actions environment and event payload

    github = from_env(environ)
    if github is None:  # from_env reads it whenever GITHUB_ACTIONS is true
        raise AssertionError("GITHUB_ACTIONS=true but no GitHub Actions context was read")
    return RunContext(
        event=github.event,
        ref=github.ref or ref,
        default_branch=github.default_branch or local_default_branch,
        ref_protected=github.ref_protected,
        pr_number=github.pr_number,
        fork=github.fork,
        dirty=dirty,
        protected_refs=patterns,
    )


def _remote_head(root: Path) -> str | None:
    """The default branch as the remote sees it (origin/HEAD), without asking the network."""
    from mlpipe.git.commands import run_git

    out = run_git(["symbolic-ref", "--quiet", "refs/remotes/origin/HEAD"], root, ok_codes=(0, 1, 128))
    return out.decode().strip().removeprefix("refs/remotes/origin/") or None


def tiered(
    local: LocalStore, remote: RemoteSettings, workspace_root: Path, *, sink: Sink = to_stderr
) -> TieredStore:
    """`local` with the registry `remote` behind it; where the run stands is read from git and the environment
    when the registry is first used. The one place a TieredStore is made (`run.session.open_store` calls it).
    `sink` hears the registry's warnings and transfer notes."""
    return TieredStore(
        local,
        settings=remote,
        workspace_root=workspace_root,
        run_context=lambda: run_context(workspace_root, remote.environ),
        sink=sink,
    )


def remote_run_records(
    remote: RemoteSettings, cache_root: Path, workspace_root: Path, *, limit: int, commit: str | None = None
) -> list[dict[str, Any]]:
    """Run records pushed to the registry (every runner's), newest first, from the repositories this run reads."""
    return run_records_from(open_remote(remote, cache_root, workspace_root), limit=limit, commit=commit)


def run_records_from(
    opened: tuple[Any, CachePolicy] | None, *, limit: int, commit: str | None = None
) -> list[dict[str, Any]]:
    """As `remote_run_records`, through a registry connection already open (its tokens serve this too)."""
    if opened is None:
        return []
    client, pol = opened
    found: list[tuple[str, str, str]] = []
    for repo in pol.read:
        for tag in client.run_tags(repo, commit):
            found.append((tag.rsplit(".", 1)[-1] if tag.count(".") >= 2 else tag, repo, tag))
    records = []
    for _run_id, repo, tag in sorted(found, reverse=True)[:limit]:
        record = client.fetch_run(repo, tag)
        if record is not None:
            records.append(record)
    return records


def remote_run(
    remote: RemoteSettings,
    cache_root: Path,
    workspace_root: Path,
    prefix: str,
    *,
    bundle_to: Path | None = None,
) -> dict[str, Any] | None:
    """The pushed run record whose id starts with `prefix`, from the repositories this clone reads; with
    `bundle_to`, the git bundle of its code snapshot is written there too (when the run pushed one)."""
    opened = open_remote(remote, cache_root, workspace_root)
    if opened is None:
        return None
    client, pol = opened
    found = {
        tag.rsplit(".", 1)[-1]: (repo, tag)
        for repo in pol.read
        for tag in client.run_tags(repo)
        if tag.rsplit(".", 1)[-1].startswith(prefix)
    }
    if len(found) > 1:
        shown = ", ".join(sorted(found)[:5])
        raise UsageError(
            f"run id prefix {prefix!r} is ambiguous in the registry ({shown}); give more characters"
        )
    if not found:
        return None
    repo, tag = next(iter(found.values()))
    record: dict[str, Any] | None = client.fetch_run(repo, tag)
    if record is not None and bundle_to is not None and not client.fetch_run_bundle(repo, tag, bundle_to):
        bundle_to.unlink(missing_ok=True)
    return record


def open_remote(
    remote: RemoteSettings, cache_root: Path, workspace_root: Path
) -> tuple[Any, CachePolicy] | None:
    """The registry client and this run's trust policy, without a local store in front (None: --cache-mode off)."""
    return tiered(LocalStore(cache_root), remote, workspace_root).open_registry()


def registry_gc(
    remote: RemoteSettings, cache_root: Path, workspace_root: Path, records: Any, keep: Any, *, dry_run: bool
) -> Any:
    """gc of the registry repository this run writes (the trusted one on a protected ref)."""
    from mlpipe.cache.gc import gc_registry

    opened = open_remote(remote, cache_root, workspace_root)
    if opened is None:
        raise UsageError("--cache-mode off: no registry to clean")
    client, _ = opened
    return gc_registry(
        client, remote.repo, records, keep, dry_run=dry_run, packages=_ghcr_packages(remote, remote.environ)
    )


def _ghcr_packages(settings: RemoteSettings, environ: Mapping[str, str]) -> Any:
    """ghcr.io has no OCI delete API: its versions are deleted through GitHub's packages REST API."""
    if settings.host != "ghcr.io":
        return None
    from mlpipe.github.client import GitHubAPI
    from mlpipe.github.packages import GhcrPackages

    token = environ.get("MLPIPE_GITHUB_TOKEN") or environ.get("GITHUB_TOKEN") or ""
    if not token:
        raise UsageError(
            "gc on ghcr.io deletes through GitHub's packages API: set GITHUB_TOKEN (or MLPIPE_GITHUB_TOKEN)"
        )
    api_url = environ.get("GITHUB_API_URL") or "https://api.github.com"
    return GhcrPackages.for_repo(GitHubAPI(api_url, token), settings.repo)
