"""`gc`: drop old cache entries from the local store and from a registry, never one a kept run points to.

Kept runs are the newest `keep_last` run records, or those started within `keep_days`. Kept entries are the
fingerprints those runs ran or reused, the steps' `latest` pointers, and (with keep_days) every entry created
within the window, so a store shared by several workspaces keeps what the others made recently. Objects no
kept entry lists go too. In a registry, result and run-record manifests are deleted through the OCI API (on
ghcr.io, which lacks it, through GitHub's packages API: github/packages.py); the
registry's own garbage collector then reclaims the blobs (only it knows which blobs other manifests share).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mlpipe.cache.local import LocalStore, _rmtree, read_result
from mlpipe.core.results import StepResult
from mlpipe.frozen import frozen
from mlpipe.runs import RunRecord


@frozen(kw_only=True)
class Keep:
    last: int | None = None
    days: float | None = None

    def cutoff(self, now: datetime) -> datetime | None:
        return now - timedelta(days=self.days) if self.days is not None else None


@dataclass(kw_only=True)
class GcReport:
    dry_run: bool
    kept_runs: int = 0
    kept_entries: int = 0
    removed_entries: list[str] = field(default_factory=list)
    removed_objects: int = 0
    freed_bytes: int = 0
    removed_tags: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "mlpipe.gc/1",
            "dry_run": self.dry_run,
            "kept_runs": self.kept_runs,
            "kept_entries": self.kept_entries,
            "removed_entries": self.removed_entries,
            "removed_objects": self.removed_objects,
            "freed_bytes": self.freed_bytes,
            "removed_tags": self.removed_tags,
        }


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def kept_runs(records: Sequence[RunRecord], keep: Keep, now: datetime) -> list[RunRecord]:
    """The runs whose entries stay (pure)."""
    ordered = sorted(records, key=lambda r: r.run_id, reverse=True)
    if keep.last is not None:
        return ordered[: keep.last]
    cutoff = keep.cutoff(now)
    return [r for r in ordered if cutoff is None or (_parse_time(r.started_at) or now) >= cutoff]


def referenced(records: Iterable[RunRecord]) -> set[str]:
    return {
        s.fingerprint
        for r in records
        for s in r.steps.values()
        if s.fingerprint and s.status in {"ran", "reused", "running"}
    }


def gc_local(
    store: LocalStore, records: Sequence[RunRecord], keep: Keep, *, dry_run: bool, now: datetime | None = None
) -> GcReport:
    now = now or datetime.now(UTC)
    kept = kept_runs(records, keep, now)
    keep_fps = referenced(kept) | _latest_fingerprints(store.root)
    cutoff = keep.cutoff(now)
    report = GcReport(dry_run=dry_run, kept_runs=len(kept))
    live_objects: set[str] = set()
    live_outputs: set[str] = set()
    for path in list(store.results()):
        fp = path.stem
        try:  # checked as every reader checks it: a shared store's entries are untrusted
            result: StepResult | None = read_result(path, str(path))
        except (OSError, ValueError):
            result = None  # a corrupt entry is a miss for every run: removed like an unkept one
        created = _parse_time(result.provenance.get("created_at")) if result is not None else None
        recent = cutoff is not None and created is not None and created >= cutoff
        if result is not None and (fp in keep_fps or recent):
            report.kept_entries += 1
            for output in result.outputs.values():
                for e in output.entries:
                    live_objects.add(e.sha256 + (".x" if e.executable else ""))
                live_outputs.add(output.digest.removeprefix("sha256:"))
            continue
        report.removed_entries.append(fp)
        if not dry_run:
            path.unlink(missing_ok=True)
    for top in (store.root / "objects").glob("*/*"):
        name = top.parent.name + top.name
        if name not in live_objects:
            report.removed_objects += 1
            with contextlib.suppress(OSError):
                report.freed_bytes += top.stat().st_size
                if not dry_run:
                    top.unlink()
    materialized = store.root / "materialized"
    if materialized.is_dir() and not dry_run:
        for top in materialized.iterdir():
            if top.name.split("-", 1)[0] not in live_outputs:
                _rmtree(top)
    return report


def _latest_fingerprints(root: Path) -> set[str]:
    found = set()
    for path in (root / "latest").glob("*/*.json"):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            fp = json.loads(path.read_bytes()).get("fingerprint")
            if isinstance(fp, str):
                found.add(fp)
    return found


def gc_registry(
    remote: Any,
    repo: str,
    local_records: Sequence[RunRecord],
    keep: Keep,
    *,
    dry_run: bool,
    now: datetime | None = None,
    packages: Any = None,
) -> GcReport:
    """Delete result, run and built-image manifests in `repo` that no kept run (local or pushed) points to.

    With `packages` (a cache.ghcr.GhcrPackages, for ghcr.io) deletion goes through GitHub's packages API.
    """
    from mlpipe.cache.oci import fetch_manifest_digest

    now = now or datetime.now(UTC)
    tags = list(remote.client.tags(repo))
    pushed = []
    for tag in (t for t in tags if t.startswith("run.")):
        data = remote.fetch_run(repo, tag)
        with contextlib.suppress(ValueError, TypeError, KeyError):
            if data is not None:
                pushed.append((tag, RunRecord.from_json(data)))
    records = {r.run_id: r for r in local_records} | {r.run_id: r for _, r in pushed}
    kept = kept_runs(list(records.values()), keep, now)
    kept_ids = {r.run_id for r in kept}
    keep_fps = referenced(kept)
    cutoff = keep.cutoff(now)
    report = GcReport(dry_run=dry_run, kept_runs=len(kept))
    doomed = [tag for tag, record in pushed if record.run_id not in kept_ids]
    # A fan-out run's plan and parts (`fanout.<run>.<name>`) go with its run record; a run still without one
    # (its report has not run yet) keeps them.
    doomed += [t for t in tags if t.startswith("fanout.") and t.split(".")[1] in records.keys() - kept_ids]
    images, pushed_images = _unused_images(remote, repo, tags, kept, report)
    doomed += images
    for tag in tags:
        if not tag.startswith("result-"):
            continue
        fp = tag.removeprefix("result-")
        if fp in keep_fps or (cutoff is not None and _recent_result(remote, repo, tag, cutoff)):
            report.kept_entries += 1
            continue
        doomed.append(tag)
        report.removed_entries.append(fp)
    if packages is not None:
        report.removed_tags.extend(doomed)
        if not dry_run:
            packages.delete_tags(doomed)
        return report
    for tag in doomed:
        report.removed_tags.append(tag)
        if not dry_run:
            digest = fetch_manifest_digest(remote.client, repo, tag)
            if digest is not None:
                remote.client.delete_manifest(repo, digest)
    for images_repo, digest in pushed_images:  # the images the engine pushed for the removed `image-*` tags
        report.removed_tags.append(f"{images_repo}@{digest}")
        if not dry_run:
            remote.client.delete_manifest(images_repo, digest)
    return report


def _unused_images(
    remote: Any, repo: str, tags: Sequence[str], kept: Sequence[RunRecord], report: GcReport
) -> tuple[list[str], list[tuple[str, str]]]:
    """`image-*` tags (built step images) whose image no kept run used, and the images the engine pushed for
    them (repository, manifest digest) that no kept `image-*` artifact records."""
    from mlpipe.cache.image_artifacts import artifact_found

    used = {str(s.image.get("id")) for r in kept for s in r.steps.values() if s.image}
    unused, pushed, still = [], set(), set()
    for tag in (t for t in tags if t.startswith("image-")):
        found = artifact_found(remote.client, repo, tag)
        at = (found.repository, found.digest) if found and found.repository and found.digest else None
        if found is not None and found.image_id in used:
            report.kept_entries += 1
            still.add(at)
        else:
            unused.append(tag)
            report.removed_entries.append(tag)
            pushed.add(at)
    return unused, sorted(at for at in pushed - still if at is not None)


def _recent_result(remote: Any, repo: str, tag: str, cutoff: datetime) -> bool:
    from mlpipe.cache.oci import result_config

    config = result_config(remote.client, repo, tag)
    created = _parse_time(((config or {}).get("result", {}).get("provenance") or {}).get("created_at"))
    return created is None or created >= cutoff
