"""The resolved pipeline: frozen, keyword-only dataclasses. Nothing past `spec/` sees a raw dict."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from pathlib import Path
from typing import Literal

from mlpipe.frozen import frozen

ParamValue = bool | int | float | str


@frozen(kw_only=True)
class Location:
    """Where a node sits in the pipeline file (1-based line and column)."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@frozen(kw_only=True)
class Param:
    """A pipeline param: its default and the value in use."""

    name: str
    default: ParamValue
    value: ParamValue
    """The default, or the `-p name=value` override converted to the default's type."""
    loc: Location


@frozen(kw_only=True)
class RepoInput:
    """An input read from the repository/workspace: a file or directory, relative to the workspace root."""

    name: str
    path: str
    """Workspace-relative, '/'-separated, normalized (no '..', no leading './')."""
    loc: Location


@frozen(kw_only=True)
class StepInput:
    """An input that is another step's output: `${{ steps.S.outputs.O }}`."""

    name: str
    step: str
    """The upstream step; for all instances of a matrix step, its name with `[*]`: `train[*]`."""
    output: str
    instances: tuple[str, ...] = ()
    """For `${{ steps.S[*].outputs.O }}`: every instance of S. The input is a directory holding one entry per
    instance, named by the instance."""
    loc: Location


@frozen(kw_only=True)
class UrlInput:
    """`{url: https://..., sha256: HEX}`: a file downloaded once, verified, stored, and read from the store.

    The declared sha256 is its identity: it enters the fingerprint without a download."""

    name: str
    url: str
    sha256: str
    """64 lowercase hex digits."""
    loc: Location


@frozen(kw_only=True)
class ExternalInput:
    """`{path: /abs/path, external: true}`: a file or directory on the runner, hashed like any input."""

    name: str
    path: str
    """Absolute."""
    loc: Location


@frozen(kw_only=True)
class DataInput:
    """A data set recorded by `mlpipe data add` (`inputs: {raw: data/raw.mlpipe-data.json}`).

    Its recorded digest is its identity; ci-run pulls the data from the store when the workspace lacks it."""

    name: str
    file: str
    """The data file, workspace-relative."""
    path: str
    """The data it records, workspace-relative."""
    digest: str
    """The recorded content (manifest) digest, `sha256:...`."""
    loc: Location


@frozen(kw_only=True)
class OciInput:
    """`oci://HOST/REPO@sha256:...`: an OCI artifact's files (oras push), fetched once, read from the store.

    The manifest digest is its identity; the step reads a directory holding each layer under its title."""

    name: str
    host: str
    repo: str
    digest: str
    """`sha256:` and 64 lowercase hex digits."""
    loc: Location

    @property
    def ref(self) -> str:
        return f"oci://{self.host}/{self.repo}@{self.digest}"


Input = RepoInput | StepInput | UrlInput | ExternalInput | DataInput | OciInput


@frozen(kw_only=True)
class Build:
    """`build: {context: DIR, dockerfile: FILE}`: the step's image, built from a directory of the repository."""

    context: str
    """Workspace-relative, normalized."""
    dockerfile: str = "Dockerfile"
    """Relative to the context and inside it, so that the context's tree hash covers it."""


@frozen(kw_only=True)
class ContainerMount:
    """`mounts: [HOST:CONTAINER[:ro]]`: a host path bind-mounted into a container step (read-write unless `:ro`)."""

    host: str
    """Workspace-relative and normalized, or absolute."""
    target: str
    """An absolute path in the container, outside /mlpipe."""
    read_only: bool = False

    def __str__(self) -> str:
        return f"{self.host}:{self.target}:{'ro' if self.read_only else 'rw'}"


@frozen(kw_only=True)
class Output:
    """A step output: a file or a directory mlpipe stores."""

    name: str
    type: Literal["dir", "file"]
    """A directory mlpipe creates empty before the step runs, or a file path whose parent exists."""
    kind: Literal["data", "metrics"] = "data"
    """`metrics`: a JSON file mapping names to numbers (implies type `file`)."""
    path: str | None = None
    """Workspace-relative path the output is checked out to after the run (like DVC outs), if any."""
    higher_is_better: bool | None = None
    """For a metrics output: whether a rise in its metrics is an improvement (`mlpipe diff` colours by it);
    `higher-is-better: true` (or `lower-is-better: true`) gives every metric in the file this direction."""
    metric_directions: tuple[tuple[str, bool], ...] = ()
    """Per metric (`higher-is-better: [accuracy]`, `lower-is-better: [loss]`): (name, higher is better)."""
    loc: Location

    def direction(self, metric: str) -> bool | None:
        """Whether a rise of `metric` is an improvement; None when the file does not say."""
        return dict(self.metric_directions).get(metric, self.higher_is_better)


@frozen(kw_only=True)
class Step:
    """A checked step: code directory, command, inputs, outputs."""

    name: str
    code: str
    """Code directory, workspace-relative and '/'-separated; '.' is the workspace root."""
    run: str
    """The command template, given to a shell after substitution."""
    inputs: Mapping[str, Input] = field(default_factory=dict)
    outputs: Mapping[str, Output] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    """Variable -> value template."""
    reuse: bool = True
    needs: tuple[str, ...] = ()
    """Ordering without data: these steps must finish first."""
    image: str | None = None
    build: Build | None = None
    """Set: mlpipe builds the image (tagged by the context's tree hash) and sets `image` to it before planning."""
    shm_size: str | None = None
    """Container options (`shm-size`, `ulimits`, `user`, `mounts`, `network`): how the container runs, not what
    it computes, so none of them enters the fingerprint."""
    ulimits: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    """name -> (soft, hard)."""
    user: str | None = None
    mounts: tuple[ContainerMount, ...] = ()
    network: str | None = None
    gpus: int = 0
    runs_on: tuple[str, ...] = ()
    fan_out: bool = False
    """`fan-out: true`: spread over CI jobs (`mlpipe plan --github-matrix`), the step gets a job of its own."""
    timeout_minutes: float | None = None
    environment: tuple[str, ...] = ()
    """Workspace-relative lock/requirements files whose content enters the fingerprint."""
    environment_python: bool = False
    """`environment: {python: true}`: the version of the `python` on PATH enters the fingerprint."""
    environment_packages: bool = False
    """`environment: {packages: true}`: that interpreter's installed distributions enter the fingerprint."""
    env_passthrough: tuple[str, ...] = ()
    """Variables the step needs from the caller (tokens): passed through, never fingerprinted or recorded."""
    matrix: Mapping[str, ParamValue] = field(default_factory=dict)
    """For an instance of a matrix step: its values (a key that is also a param overrides that param)."""
    instance_of: str | None = None
    """For an instance of a matrix step, `train[lr=0.1]`: the step as written, `train`."""
    loc: Location

    def upstream(self) -> tuple[str, ...]:
        """Every step this one waits for: data dependencies (inputs and `${{ steps.* }}` refs) and `needs`."""
        from mlpipe.spec.refs import step_refs

        names: list[str | None] = []
        for item in self.inputs.values():
            if isinstance(item, StepInput):
                names.extend(item.instances or [item.step])
        for template in (self.run, *self.env.values()):
            names.extend(ref.step for ref in step_refs(template))
        names.extend(self.needs)
        return tuple(dict.fromkeys(n for n in names if n is not None))


@frozen(kw_only=True)
class Pipeline:
    """A checked pipeline: its params and steps."""

    name: str
    file: Path
    """Absolute path of the pipeline file."""
    root: Path
    """Absolute workspace root: the pipeline file's directory; every path in the file is relative to it."""
    params: Mapping[str, Param] = field(default_factory=dict)
    steps: Mapping[str, Step] = field(default_factory=dict)
    """In file order."""
