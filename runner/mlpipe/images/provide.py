"""Images that steps `build:`, shared through the OCI cache: pushed after a build, loaded by other runners.

A built image is pushed by the engine itself, as a real OCI image, to `<repo>/images:image-<build key>`
(images/pushed.py): base layers the registry has are not uploaded again. An artifact tagged `image-<build key>`
in the cache repository, artifactType `IMAGE_ARTIFACT_TYPE`, records it: a config blob naming the image id, the
repository and manifest digest it was pushed to, the build it came from and the pushing run's trust, and the
empty descriptor as its layer. The build key is a digest of the context's tree hash, the Dockerfile and the
platform, so every runner building the same context looks for the same tag. Other runners pull the recorded
digest through their engine and use it only if its id is the recorded one. Artifacts of the older format (the
image as one `docker save` archive layer, streamed through a temp file) are still loaded.

A step's image id comes from the engine (its build tag), else from the artifact's config in the registry (read
with the run's trust rules), else the image is built and, where the run writes, pushed in the background like
results (the run waits for it at the end). The image is pulled or loaded only when a step using the image
is to run, so a run that reuses every step moves no image. A bad artifact is a warning and a build; a failing
registry is the cache's usual single warning (an error with --cache-required). `mlpipe plan` loads and builds
nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlpipe.cache.image_artifacts import (
    IMAGE_ARTIFACT_TYPE,
    IMAGE_CONFIG_TYPE,
    IMAGE_FORMAT,
    IMAGE_FORMAT_PUSHED,
    IMAGES_SUFFIX,
    Found,
    Unusable,
    read_artifact,
)
from mlpipe.digest import canonical_json, json_digest
from mlpipe.errors import CacheError, ContainerError, MlpipeError
from mlpipe.events import Notice, Sink, cache_note, message, to_stderr, warning
from mlpipe.frozen import frozen
from mlpipe.images.archives import BadArchive, load_image
from mlpipe.images.pushed import EngineRefused, NotSaved, Unauthorized, pull_image, push_image
from mlpipe.text import human_size

if TYPE_CHECKING:
    from mlpipe.cache.base import ResultStore
    from mlpipe.cache.tiered import TieredStore
    from mlpipe.cache.trust import CachePolicy

__lazy_modules__ = ["docker"]


IMAGE_MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
)
"""What engines push; without the Docker type a registry may answer an old schema 1 conversion."""


def build_key(tree: str, dockerfile: str, platform: str) -> str:
    """What names a build across runners: the context's tree, the Dockerfile in it, the platform."""
    parts = {"format": IMAGE_FORMAT, "context": tree, "dockerfile": dockerfile, "platform": platform}
    return json_digest(parts).removeprefix("sha256:")


def build_tag(step: str, tree: str) -> str:
    """The tag of a step's built image: its name and its context's tree hash, so an unchanged context is found."""
    name = re.sub(r"[^a-z0-9._-]+", "-", step.lower()).strip("-._") or "step"
    return f"mlpipe-build/{name}:{tree[:12]}"


def image_tag(key: str) -> str:
    return f"image-{key}"


@frozen(kw_only=True)
class BuildRequest:
    step: str
    tag: str
    """The engine's tag for the built image (`mlpipe-build/<step>:<tree[:12]>`)."""
    key: str
    shown: str
    """The context as the pipeline names it, for messages."""
    dockerfile: str
    context: Callable[[], Path]
    """The build context on disk, made only when a build happens."""


@frozen(kw_only=True)
class Provided:
    images: dict[str, dict[str, str | None]] = field(default_factory=dict)
    """Build tag -> {"id", "digest": None, "source": "engine" | "registry" | "built"}."""
    pending: dict[str, str] = field(default_factory=dict)
    """Step -> why it must run: its image is nowhere and is not built here (`mlpipe plan`)."""
    later: dict[str, Later] = field(default_factory=dict)
    """Build tag -> what `settle` does for it, once the plan says which steps run."""

    def settle(self, store: ResultStore, running: Collection[str]) -> bool:
        """Ready the images of the steps that will run: load what only the registry has (a bad artifact is
        built instead), and push what the engine had, as results are pushed: when a step runs. So a run that
        reuses every step downloads no image and asks the registry nothing. True when an image had to be built
        instead of loaded: its id changed, and with it the plan."""
        wanted = [later for later in self.later.values() if any(step in running for step in later.steps)]
        registry = RegistryImages.of(store) if wanted else None
        if registry is None:
            return False
        from mlpipe.executors.docker import client

        changed = False
        engine = client()
        try:
            for later in wanted:
                if later.found is None:
                    registry.push_later(later.request, later.image_id)
                elif not registry.load(later.found, later.request, engine):
                    self.images[later.request.tag] = _build(
                        engine, later.request, registry, registry.store.sink
                    )
                    changed = True
        finally:
            engine.close()
        return changed


@dataclass(kw_only=True)
class Later:
    request: BuildRequest
    image_id: str
    found: Found | None
    """Where only the registry has the image; None where the engine has it."""
    steps: list[str]


def _transfer(verb: str, request: BuildRequest, where: str, size: int, started: float) -> Notice:
    """One plain line per image transfer, like the results' (`mlpipe: cache: pushed ...`)."""
    seconds = time.monotonic() - started
    return cache_note(
        f"{verb} {request.step} image {request.tag} {where} ({human_size(size)}) in {seconds:.1f}s"
    )


def provide(
    requests: Sequence[BuildRequest], store: ResultStore, *, build: bool, sink: Sink = to_stderr
) -> Provided:
    """Each step image's id: from the engine, else from the registry's artifact (loaded by `settle` if a step
    runs), else built now (`build`), else the step is pending (`mlpipe plan`). `sink` hears that an image is
    built here; what the registry does is heard by the store's sink."""
    if not requests:
        return Provided()
    from mlpipe.executors.docker import client

    registry = RegistryImages.of(store)
    provided = Provided()
    reasons: dict[str, str] = {}
    engine = client()
    try:
        for request in requests:
            tag = request.tag
            if tag in provided.later:  # matrix instances share one image
                provided.later[tag].steps.append(request.step)
            elif tag in reasons:
                provided.pending[request.step] = reasons[tag]
            elif tag in provided.images:
                continue
            elif (local := _local_id(engine, tag)) is not None:
                provided.images[tag] = _info(local, "engine")
                provided.later[tag] = Later(request=request, image_id=local, found=None, steps=[request.step])
            elif registry is not None and (found := registry.find(request)) is not None:
                provided.images[tag] = _info(found.image_id, "registry")
                provided.later[tag] = Later(
                    request=request, image_id=found.image_id, found=found, steps=[request.step]
                )
            elif build:
                provided.images[tag] = _build(engine, request, registry, sink)
            else:
                where = " nor in the registry" if registry is not None and registry.usable() else ""
                reasons[tag] = provided.pending[request.step] = (
                    f"its image must be built from {request.shown!r} ({tag} is not in the container engine{where})"
                )
    finally:
        engine.close()
    return provided


def _build(
    engine: Any, request: BuildRequest, registry: RegistryImages | None, sink: Sink
) -> dict[str, str | None]:
    """Build the image here, and push it where the run writes."""
    from mlpipe.executors.docker import build_image

    sink(message(f"step {request.step}: building its image from {request.shown!r} ({request.tag})"))
    build_image(request.context(), request.dockerfile, request.tag, shown=request.shown)
    built = _local_id(engine, request.tag)
    if built is None:
        raise ContainerError(f"the engine built {request.tag} but does not find it")
    if registry is not None:
        registry.push_later(request, built)
    return _info(built, "built")


def _info(image_id: str, source: str) -> dict[str, str | None]:
    return {"id": image_id, "digest": None, "source": source}


def _local_id(engine: Any, tag: str) -> str | None:
    import docker

    try:
        return str(engine.images.get(tag).id)
    except docker.errors.ImageNotFound:
        return None


class RegistryImages:
    """The registry behind a TieredStore, for images: its client, the run's policy, its failure handling."""

    def __init__(self, store: TieredStore) -> None:
        self.store = store

    @staticmethod
    def of(store: ResultStore) -> RegistryImages | None:
        from mlpipe.cache.tiered import TieredStore

        return RegistryImages(store) if isinstance(store, TieredStore) else None

    def usable(self) -> bool:
        return self.store.open_registry() is not None

    def _where(self, repo: str) -> str:
        return f"{self.store.settings.host}/{repo}"

    # -- pull ------------------------------------------------------------------------------------------
    def find(self, request: BuildRequest) -> Found | None:
        """The image artifact of this build in the first repository the run reads that has one it trusts."""
        opened = self.store.open_registry()
        if opened is None:
            return None
        remote, pol = opened
        tag = image_tag(request.key)
        for repo in pol.read:
            try:
                found = read_artifact(remote.client, repo, tag)
            except Unusable as error:
                self.store.sink(warning(f"ignoring registry image {self._where(repo)}:{tag[:18]}…: {error}"))
                continue
            except CacheError as error:
                self.store.fail(error, f"looking up the image of step {request.step} in {self._where(repo)}")
                return None
            if found is not None and pol.accepts(repo, found[1]):
                return found[0]
        return None

    def load(self, found: Found, request: BuildRequest, engine: Any) -> bool:
        """Get the image into the engine under its build tag; False (and a warning) when it cannot be used."""
        opened = self.store.open_registry()
        if opened is None:
            return False
        remote, pol = opened
        where = f"{self._where(found.repo)}:{image_tag(request.key)[:18]}…"
        started = time.monotonic()
        if found.digest is not None and found.repository is not None:
            size = self._pull(found, (found.repository, found.digest), request, engine, remote, where)
        else:
            size = self._load_archive(found, request, engine, remote, where)
        if size is None:
            return False
        self.store.sink(_transfer("fetched", request, f"from {where}", size, started))
        if pol.write is not None:  # whoever reads this run's scope reads where the image came from too
            _mark(self.store, request.key, pol.write, found.image_id)
        return True

    def _pull(
        self, found: Found, at: tuple[str, str], request: BuildRequest, engine: Any, remote: Any, where: str
    ) -> int | None:
        """Format 2: the engine pulls the recorded digest; the image is used only if its id is the recorded one."""
        import docker

        try:
            got = pull_image(engine, self.store.settings.host, *at, remote.client.credentials)
        except EngineRefused as error:
            self.store.sink(
                warning(
                    f"ignoring registry image {where}: the engine could not pull it: {error}; building it here"
                )
            )
            return None
        if got != found.image_id:
            self.store.sink(
                warning(
                    f"ignoring registry image {where}: its digest {at[1][:19]} gave image {got[:19]}, "
                    f"not the recorded {found.image_id[:19]}; building it here"
                )
            )
            return None
        repository, _, version = request.tag.rpartition(":")
        try:
            engine.api.tag(found.image_id, repository, tag=version)
            return int(engine.api.inspect_image(found.image_id).get("Size") or 0)
        except docker.errors.DockerException as error:
            self.store.sink(
                warning(
                    f"ignoring registry image {where}: the engine could not tag it: {error}; building it here"
                )
            )
            return None

    def _load_archive(
        self, found: Found, request: BuildRequest, engine: Any, remote: Any, where: str
    ) -> int | None:
        """Format 1: stream the `docker save` archive into the engine."""
        from mlpipe.cache.registry import BlobCorrupt

        layer = found.layer or {}
        temp = self.store.local.temp_path(".image.tar")
        try:
            with open(temp, "wb") as out:
                remote.client.download_blob(
                    found.repo, str(layer["digest"]), out, max_size=int(layer["size"])
                )
            load_image(engine, temp, found.image_id, request.tag)
        except (BlobCorrupt, Unusable, BadArchive) as error:
            self.store.sink(warning(f"ignoring registry image {where}: {error}; building it here"))
            return None
        except CacheError as error:
            self.store.fail(error, f"pulling the image of step {request.step} from {where}")
            return None
        finally:
            temp.unlink(missing_ok=True)
        return int(layer["size"])

    # -- push ------------------------------------------------------------------------------------------
    def push_later(self, request: BuildRequest, image_id: str) -> None:
        """Push the image in the background, as results are, where this run writes and it was not pushed yet."""
        opened = self.store.open_registry()
        if opened is None or opened[1].write is None:
            return
        remote, pol = opened
        if _marked(self.store, request.key, opened[1].write, image_id):
            return  # pushed from this store before: a warm run makes no request
        self.store.push_in_background(self._push, remote, pol, request, image_id)

    def _push(self, remote: Any, pol: CachePolicy, request: BuildRequest, image_id: str) -> str:
        if not self.store.pushing or pol.write is None:
            return "image-skipped"
        started = time.monotonic()
        try:
            outcome, size = self._push_now(remote, pol.write, pol.read, request, image_id)
        except NotSaved as error:  # the engine's fault, not the registry's: it stays in use
            self.store.sink(warning(f"not pushing the image of step {request.step}: {error}"))
            return "image-failed"
        except Exception as error:  # noqa: BLE001 - a failed push is reported, never fails the steps
            with contextlib.suppress(CacheError):  # with --cache-required, sync reports it
                self.store.fail_push(
                    error, f"pushing the image of step {request.step} to {self._where(pol.write)}"
                )
            return "image-failed"
        _mark(self.store, request.key, pol.write, image_id)
        if outcome == "image-pushed":
            where = f"to {self._where(pol.write)}:{image_tag(request.key)[:18]}…"
            self.store.sink(_transfer("pushed", request, where, size, started))
        return outcome

    def _push_now(
        self, remote: Any, repo: str, mount_from: Sequence[str], request: BuildRequest, image_id: str
    ) -> tuple[str, int]:
        """'image-pushed' or 'image-exists', and the image's size. The engine pushes the image to
        `<repo>/images`, then the artifact recording it goes to `repo`."""
        import docker

        from mlpipe.cache.oci import _manifest, empty_layer
        from mlpipe.cache.registry import RegistryAuthError
        from mlpipe.executors.docker import client as engine_client

        del mount_from  # the engine mounts nothing across repositories; its blobs are checked by digest
        client, tag = remote.client, image_tag(request.key)
        if client.has_manifest(repo, tag, push=True):
            return "image-exists", 0  # the first complete entry wins, as for results
        repository = repo + IMAGES_SUFFIX
        try:
            engine = engine_client()
        except MlpipeError as error:  # an engine that is gone: nothing is pushed
            raise NotSaved(str(error)) from None
        try:
            try:
                if str(engine.images.get(request.tag).id) != image_id:
                    raise NotSaved(f"{request.tag} changed in the engine while it was being pushed")
                size = int(engine.api.inspect_image(image_id).get("Size") or 0)
            except docker.errors.DockerException as error:
                raise NotSaved(f"the engine does not find {request.tag}: {error}") from None
            try:
                push_image(engine, image_id, self.store.settings.host, repository, tag, client.credentials)
            except Unauthorized as error:
                raise RegistryAuthError(
                    f"the registry's credentials cannot push to {repository}: {error}"
                ) from None
            except EngineRefused as error:
                raise CacheError(f"the engine could not push it to {repository}: {error}") from None
        finally:
            engine.close()
        digest = _pushed_digest(client, repository, tag, image_id)
        config = canonical_json(
            {
                "format": IMAGE_FORMAT_PUSHED,
                "image": {"id": image_id, "tag": request.tag, "repository": repository, "digest": digest},
                "build": {"key": request.key, "context": request.shown, "dockerfile": request.dockerfile},
                "trust": self.store.trust,
            }
        )
        config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
        if not client.has_blob(repo, config_digest):
            client.upload_bytes(repo, config_digest, config)
        annotations = {"org.mlpipe.image.id": image_id, "org.mlpipe.build": request.key}
        manifest = _manifest(
            IMAGE_ARTIFACT_TYPE, IMAGE_CONFIG_TYPE, config, empty_layer(client, repo), annotations
        )
        if client.has_manifest(repo, tag, push=True):
            return "image-exists", size
        client.put_manifest(repo, tag, manifest)
        return "image-pushed", size


def _pushed_digest(client: Any, repository: str, tag: str, image_id: str) -> str:
    """The digest of the manifest the engine pushed, as the registry serves it; it must be this image."""
    from mlpipe.cache.oci import _load_json

    got = client.get_manifest(repository, tag, accept=IMAGE_MANIFEST_TYPES)
    where = f"{repository}:{tag[:18]}…"
    if got is None:
        raise CacheError(f"the engine pushed the image to {where}, but the registry does not have it")
    config = _load_json(got[0], "manifest").get("config")
    if not isinstance(config, dict) or config.get("digest") != image_id:
        raise CacheError(f"{where} does not hold image {image_id[:19]} after the engine pushed it there")
    return str(got[1])


# -- what this store pushed, so a warm run asks the registry nothing ---------------------------------------------
def _marker(store: ResultStore, key: str) -> Path:
    return store.local.root / "images" / f"{key}.json"


def _marked(store: ResultStore, key: str, repo: str, image_id: str) -> bool:
    try:
        pushed = json.loads(_marker(store, key).read_text()).get("pushed") or {}
    except (OSError, ValueError, AttributeError):
        return False
    return bool(pushed.get(repo) == image_id)


def _mark(store: ResultStore, key: str, repo: str, image_id: str) -> None:
    path = _marker(store, key)
    with contextlib.suppress(OSError, ValueError, AttributeError):
        known = json.loads(path.read_text()) if path.exists() else {}
        pushed = {**(known.get("pushed") or {}), repo: image_id}
        path.parent.mkdir(parents=True, exist_ok=True)
        staged = store.local.temp_path(".json")
        staged.write_text(json.dumps({"format": 1, "pushed": pushed}))
        staged.replace(path)
