"""The local store in front of a registry: what the runner uses with `--cache oci://HOST[:PORT]/REPO`.

Lookups go local, then to the registry (a hit is copied into the local store); a published result is pushed
in the background while later steps run, and `sync` waits for those pushes and pushes the run record. The
registry is contacted only on a local miss or a push, so a no-op run with a warm local store makes no request.
A registry that fails is warned about once and left alone for the rest of the run.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import field
from pathlib import Path
from typing import Any

from mlpipe.cache.base import Published
from mlpipe.cache.local import LocalStore
from mlpipe.cache.trust import CacheMode, CachePolicy, RunContext, policy
from mlpipe.core.results import StepResult
from mlpipe.digest import Manifest
from mlpipe.errors import CacheError, UsageError
from mlpipe.events import Sink, cache_note, to_stderr, warning
from mlpipe.frozen import frozen
from mlpipe.text import human_size

_REPO_PART = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_HOST = re.compile(r"[A-Za-z0-9.-]+(?::[0-9]{1,5})?|\[[0-9A-Fa-f:]+\](?::[0-9]{1,5})?")


@frozen(kw_only=True)
class RemoteSettings:
    host: str
    repo: str
    mode: CacheMode = "auto"
    plain_http: bool | None = None
    """True: plain HTTP; False: HTTPS; None: plain HTTP to loopback hosts only."""
    allow_dirty_push: bool = False
    required: bool = False
    retry_budget_s: float = 30.0
    environ: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    """Where the registry's credentials are looked up (the command's `Settings.environ`); never printed."""

    @property
    def url(self) -> str:
        return f"oci://{self.host}/{self.repo}"


def parse_oci_url(value: str) -> tuple[str, str]:
    rest = value.removeprefix("oci://")
    host, _, repo = rest.partition("/")
    if "@" in host:
        raise UsageError(
            "cache URL: put registry credentials in MLPIPE_REGISTRY_USERNAME/PASSWORD, not the URL"
        )
    if not _HOST.fullmatch(host) or not repo or not all(_REPO_PART.fullmatch(p) for p in repo.split("/")):
        raise UsageError(
            f"cache {value!r}: expected oci://HOST[:PORT]/REPO with a lowercase repository path "
            "(letters, digits, '.', '_', '-', separated by '/')"
        )
    return host, repo


def transfer_line(verb: str, result: StepResult, where: str, seconds: float) -> str:
    files = sum(len(m.entries) for m in result.outputs.values())
    size = human_size(sum(m.size for m in result.outputs.values()))
    step = result.provenance.get("step") or "step"
    return f"{verb} {step} result {result.fingerprint[:12]} {where} ({files} files, {size}) in {seconds:.1f}s"


class TieredStore:
    """A `ResultStore`: a local store (`local`) with the registry behind it. The result verbs go to the local
    store first; lookups that miss there go to the registry, and published results are pushed to it."""

    def __init__(
        self,
        local: LocalStore,
        *,
        settings: RemoteSettings,
        workspace_root: Path,
        run_context: Callable[[], RunContext],
        sink: Sink = to_stderr,
    ) -> None:
        """`run_context` says where this run stands (event, ref, protection) for the trust policy; it is called
        once, when the registry is first used. `sink` hears the warnings (a registry given up, an entry refused)
        and one `cache` notice per transfer, so CI logs show where time went."""
        self.sink = sink
        self._local = local
        self.settings = settings
        self.workspace_root = workspace_root
        self._run_context = run_context
        self._remote: Any = None
        self._policy: CachePolicy | None = None
        self._disabled = settings.mode == "off"
        self._pushes_refused = False
        self._lock = threading.Lock()
        self._pushes: list[Future[str]] = []
        self._pool: ThreadPoolExecutor | None = None
        self.failures: list[str] = []
        self._refused: set[tuple[str, str]] = set()
        """(repository, fingerprint) of entries refused in this run."""
        self._pulls: dict[str, tuple[Future[StepResult], str, StepResult]] = {}
        """Fingerprint -> the pull of its objects that `lookup_ahead` started, the repository, the record."""
        self._pull_pool: ThreadPoolExecutor | None = None

    @property
    def local(self) -> LocalStore:
        """The local store in front of the registry: what is fetched lands there, what is published is read
        from there."""
        return self._local

    # -- the registry, set up on first use -------------------------------------------------------------
    def open_registry(self) -> tuple[Any, CachePolicy] | None:
        with self._lock:
            if self._disabled:
                return None
            if self._remote is None:
                from mlpipe.cache.logins import find_credentials
                from mlpipe.cache.oci import OciCache
                from mlpipe.cache.registry import RegistryClient, RetryBudget

                ctx = self._run_context()
                s = self.settings
                self._policy = policy(ctx, s.repo, mode=s.mode, allow_dirty_push=s.allow_dirty_push)
                client = RegistryClient(
                    s.host,
                    credentials=find_credentials(s.host, s.environ, repo=s.repo),
                    plain_http=s.plain_http,
                    environ=s.environ,
                    budget=RetryBudget(s.retry_budget_s),
                )
                self._remote = OciCache(client, self._local)
                self._trust = {
                    "event": ctx.event,
                    "ref": ctx.ref,
                    "protected": self._policy.protected,
                    "scope": self._policy.write,
                }
            if self._policy is None:
                raise AssertionError("the registry is open but its trust policy is not set")
            return self._remote, self._policy

    def fail(self, error: Exception, doing: str) -> None:
        """Stop using the registry for this run; say so once, whatever the error and wherever it came from (the
        client warns about nothing itself). With --cache-required, fail instead."""
        message = f"{doing}: {error}"
        with self._lock:
            first = not self._disabled
            self._disabled = True
            self.failures.append(message)
        if first:
            self.sink(warning(f"{message}; going on without the registry {self.settings.url}"))
        if self.settings.required:
            raise CacheError(f"{message} (--cache-required)")

    def fail_push(self, error: Exception, doing: str) -> None:
        """A push that failed. Refused credentials (a token that may only pull) stop the pushes, not the reads."""
        from mlpipe.cache.registry import RegistryAuthError

        if not isinstance(error, RegistryAuthError) or self.settings.required:
            self.fail(error, doing)
            return
        message = f"{doing}: {error}"
        with self._lock:
            first = not self._pushes_refused
            self._pushes_refused = True
            self.failures.append(message)
        if first:
            self.sink(
                warning(
                    f"{message}; still reading from {self.settings.url}, pushing nothing more in this run"
                )
            )

    # -- the ResultStore verbs -------------------------------------------------------------------------
    def lookup(self, fingerprint: str) -> StepResult | None:
        pulling = self._take_pull(fingerprint)
        if pulling is not None:
            future, repo, _record = pulling
            found = self._settle(fingerprint, future, repo)
            if found is not None:
                return found
        found = self._local.lookup(fingerprint)
        if found is not None or not re.fullmatch(r"[0-9a-f]{64}", fingerprint):
            return found
        return self._from_registry(fingerprint, ahead=False)

    def lookup_ahead(self, fingerprint: str) -> StepResult | None:
        """As `lookup`, for a plan that a runner carries out next: a result only the registry has is returned
        once its record is read and checked, and its objects are pulled on background threads. The runner's
        `lookup` of the fingerprint, before it uses the result, waits for them (each object verified against its
        digest, as `lookup` does) and finds a miss when they could not be pulled. So the registry's round trips
        for one step's outputs overlap the next step's lookup."""
        with self._lock:
            pulling = self._pulls.get(fingerprint)
        if pulling is not None:  # a plan made again (built images) reads the pending record
            return pulling[2]
        found = self._local.lookup(fingerprint)
        if found is not None or not re.fullmatch(r"[0-9a-f]{64}", fingerprint):
            return found
        return self._from_registry(fingerprint, ahead=True)

    def _from_registry(self, fingerprint: str, *, ahead: bool) -> StepResult | None:
        opened = self.open_registry()
        if opened is None:
            return None
        remote, pol = opened
        from mlpipe.cache.oci import Refused

        for repo in pol.read:
            if (repo, fingerprint) in self._refused:
                continue  # said once; a later lookup in this run (plan, then run) does not fetch it again
            started = time.monotonic()
            try:
                entry = remote.read_entry(repo, fingerprint, lambda t, r=repo: pol.accepts(r, t))
                if entry is not None and ahead:
                    self._pull_later(remote, repo, entry, started)
                    return entry.result  # type: ignore[no-any-return]
                result: StepResult | None = None if entry is None else remote.pull_entry(repo, entry)
            except Refused as error:
                self._refuse(repo, fingerprint, error)
                continue
            except CacheError as error:
                self.fail(error, f"looking up {fingerprint[:12]} in {self.settings.host}/{repo}")
                return None
            if result is not None:
                self._fetched(result, repo, started)
                return result
        return None

    def _pull_later(self, remote: Any, repo: str, entry: Any, started: float) -> None:
        """Pull a checked entry's objects on the pull threads; `lookup` settles it."""

        def pull() -> StepResult:
            result: StepResult = remote.pull_entry(repo, entry)
            self._fetched(result, repo, started)
            return result

        with self._lock:
            if self._pull_pool is None:
                self._pull_pool = ThreadPoolExecutor(4, thread_name_prefix="mlpipe-pull")
            future = self._pull_pool.submit(pull)
            self._pulls[entry.result.fingerprint] = (future, repo, entry.result)

    def _take_pull(self, fingerprint: str) -> tuple[Future[StepResult], str, StepResult] | None:
        with self._lock:
            return self._pulls.pop(fingerprint, None)

    def _settle(self, fingerprint: str, future: Future[StepResult], repo: str) -> StepResult | None:
        """A background pull's outcome, as `lookup` would have met it: the stored result, or None (a refused
        entry is warned about, a failing registry given up) and the lookup goes on as without the pull."""
        from mlpipe.cache.oci import Refused

        try:
            return future.result()
        except Refused as error:
            self._refuse(repo, fingerprint, error)
        except CacheError as error:
            self.fail(error, f"looking up {fingerprint[:12]} in {self.settings.host}/{repo}")
        return None

    def _refuse(self, repo: str, fingerprint: str, error: Exception) -> None:
        with self._lock:
            self._refused.add((repo, fingerprint))
        self.sink(warning(f"ignoring registry entry {repo}:result-{fingerprint[:12]}…: {error}"))

    def _fetched(self, result: StepResult, repo: str, started: float) -> None:
        where = f"from {self.settings.host}/{repo}"
        self.sink(cache_note(transfer_line("fetched", result, where, time.monotonic() - started)))

    def publish(self, result: StepResult, staged: Mapping[str, Path]) -> Published:
        published = self._local.publish(result, staged)
        opened = self.open_registry()
        # Pushed even when the local store had it: an earlier run may have found the registry down.
        if opened is not None and opened[1].write is not None:
            remote, pol = opened
            self.push_in_background(self._push, remote, pol, published.result)
        return published

    def materialize(self, manifest: Manifest, name: str) -> Path:
        return self._local.materialize(manifest, name)

    def checkout(self, manifest: Manifest, dest: Path) -> None:
        self._local.checkout(manifest, dest)

    def latest(self, pipeline: str, step: str) -> StepResult | None:
        """The local pointer's result, fetched from the registry when the local store no longer has it."""
        fingerprint = self._local.latest_fingerprint(pipeline, step)
        return None if fingerprint is None else self.lookup(fingerprint)

    def set_latest(self, pipeline: str, step: str, fingerprint: str) -> None:
        self._local.set_latest(pipeline, step, fingerprint)

    # -- the registry-facing extras ---------------------------------------------------------------------
    def push_in_background(self, push: Callable[..., str], *args: Any) -> None:
        """Run `push(*args)` on the push threads; `sync` waits for it and counts the outcome it returns."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(2, thread_name_prefix="mlpipe-push")
            self._pushes.append(self._pool.submit(push, *args))

    @property
    def pushing(self) -> bool:
        """False once the registry failed or refused a push: nothing more is pushed in this run."""
        return not (self._disabled or self._pushes_refused)

    @property
    def trust(self) -> dict[str, Any]:
        """Who writes this run's entries (event, ref, protected, scope): recorded in every pushed artifact."""
        return dict(self._trust)

    def _push(self, remote: Any, pol: CachePolicy, result: StepResult) -> str:
        from mlpipe.cache.oci import TooLarge

        if self._disabled or self._pushes_refused:
            return "skipped"
        started = time.monotonic()
        try:
            outcome: str = remote.push(pol.write, result, self._trust, mount_from=pol.read)
            if outcome == "pushed":
                where = f"to {self.settings.host}/{pol.write}"
                self.sink(cache_note(transfer_line("pushed", result, where, time.monotonic() - started)))
            return outcome
        except TooLarge as error:  # this result only: the registry is fine
            step = result.provenance.get("step") or "step"
            self.sink(warning(f"not pushing the result of {step}: {error}"))
            return "too-large"
        except Exception as error:  # noqa: BLE001 - a failed push is reported, never fails the steps
            with contextlib.suppress(CacheError):  # with --cache-required, sync reports it
                self.fail_push(
                    error, f"pushing {result.fingerprint[:12]} to {self.settings.host}/{pol.write}"
                )
            return "failed"

    def sync(self, run: Mapping[str, Any]) -> dict[str, Any]:
        """Wait for the pushes, then push the run record; say what happened, for the run record."""
        self._drop_pulls()
        with self._lock:
            pushes, self._pushes = self._pushes, []
        pending = sum(not p.done() for p in pushes)
        if pending:
            self.sink(cache_note(f"waiting for {pending} push(es) to {self.settings.url}"))
        outcomes = [p.result() for p in pushes]
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        summary: dict[str, Any] = {"registry": self.settings.url}
        if self._policy is not None:
            summary.update(read=list(self._policy.read), write=self._policy.write, why=self._policy.why)
            summary.update(
                {k: outcomes.count(k) for k in ("pushed", "exists", "failed", "too-large") if k in outcomes}
            )
            images = {
                k.removeprefix("image-"): outcomes.count(k) for k in set(outcomes) if k.startswith("image-")
            }
            if images:
                summary["images"] = images
            if self._policy.write is not None and not self._disabled and not self._pushes_refused:
                bundle = self._snapshot_bundle(run)
                try:
                    summary["run_tag"] = self._remote.push_run(
                        self._policy.write, {**run, "cache": summary}, bundle=bundle
                    )
                except CacheError as error:
                    with contextlib.suppress(CacheError):  # --cache-required: "unavailable" below
                        self.fail_push(error, "pushing the run record")
                finally:
                    if bundle is not None:
                        bundle.unlink(missing_ok=True)
        if self.failures:
            summary["errors"] = list(self.failures)
        summary["unavailable"] = self._disabled and self.settings.mode != "off"
        summary["required"] = self.settings.required
        return summary

    def _drop_pulls(self) -> None:
        """Pulls no runner looked up (steps skipped or cancelled): those not started are dropped, the others are
        let finish (a result half-pulled leaves no entry, only objects a later pull reuses)."""
        with self._lock:
            pool, self._pull_pool, self._pulls = self._pull_pool, None, {}
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _snapshot_bundle(self, run: Mapping[str, Any]) -> Path | None:
        """A dirty run's code snapshot as a git bundle, for the record pushed with --allow-dirty-push."""
        git = run.get("git") or {}
        ref = git.get("snapshot_ref")
        if not git.get("dirty") or not ref:
            return None
        from mlpipe.errors import GitError
        from mlpipe.git.commands import run_git

        root = Path(git.get("root") or self.workspace_root)
        dest = self._local.temp_path(".bundle")
        try:
            # Leave out what a clone already has: the run's commit, when a remote-tracking ref holds it.
            commit = git.get("commit")
            known = commit and run_git(["for-each-ref", "--contains", commit, "refs/remotes"], root).strip()
            run_git(["bundle", "create", str(dest), ref, *([f"^{commit}"] if known else [])], root)
        except GitError as error:
            self.failures.append(f"bundling the run's code snapshot: {error}")
            return None
        return dest
