"""The settings of one command, resolved once: command line > environment > the repository's `mlpipe.toml`
(committed, beside the pipeline file) > the user's `$XDG_CONFIG_HOME/mlpipe/config.toml`.

This is the one reader of mlpipe's own MLPIPE_* variables: the backends take their values from the frozen
`Settings` built here, and nothing writes the environment. A step's environment is the caller's, less
mlpipe's own registry settings and credentials (`step_environment`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from mlpipe.errors import UsageError
from mlpipe.frozen import frozen
from mlpipe.text import did_you_mean, table

REPO_FILE = "mlpipe.toml"
MODES = ("auto", "read-write", "read", "off")


@frozen(kw_only=True, eq=False, repr=False)
class Key:
    """One setting: its name, environment variable, command-line option, check and help."""

    name: str
    env: str
    option: str
    check: Callable[[Any], str | None]
    """The problem with a value, or None when it is fine."""
    help: str


def _cache(value: Any) -> str | None:
    return None if isinstance(value, str) and value.strip() else "expected a directory or oci://HOST/REPO"


def _jobs(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    return None if ok else "expected a whole number of at least 1"


def _mode(value: Any) -> str | None:
    return None if value in MODES else f"expected one of: {', '.join(MODES)}"


KEYS = {
    key.name: key
    for key in (
        Key(
            name="cache", env="MLPIPE_CACHE", option="--cache", check=_cache, help="result store or registry"
        ),
        Key(name="jobs", env="MLPIPE_JOBS", option="--jobs", check=_jobs, help="steps run at once"),
        Key(
            name="cache-mode",
            env="MLPIPE_CACHE_MODE",
            option="--cache-mode",
            check=_mode,
            help="registry access",
        ),
    )
}


@frozen(kw_only=True)
class Setting:
    """A setting's value and where it came from."""

    name: str
    value: Any
    """None when nothing sets it (the command's own default applies)."""
    source: str
    """Where the value came from: '--jobs', 'env MLPIPE_JOBS', 'mlpipe.toml', a user config path, 'default'."""
    from_file: bool = False


def user_config_path(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME") or "~").expanduser() / ".config")
    return Path(base) / "mlpipe" / "config.toml"


def read_config(path: Path, shown: str) -> dict[str, Any]:
    """A config file's settings, checked; {} when there is no file. Relative cache dirs are made absolute."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"{shown}: cannot read: {error}") from None
    import tomllib  # loaded only where a config file exists (most runs have none)

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"{shown}: invalid TOML: {error}") from None
    except RecursionError:  # tomllib descends recursively: `a = [[[[...` 100,000 deep
        raise UsageError(f"{shown}: invalid TOML: arrays or tables nested too deep; flatten them") from None
    problems = []
    for name, value in data.items():
        if name not in KEYS:
            problems.append(f"{shown}: unknown key {name!r}; {did_you_mean(name, KEYS)}")
        elif (problem := KEYS[name].check(value)) is not None:
            problems.append(f"{shown}: {name}: {problem}, found {value!r}")
    if problems:
        raise UsageError("\n".join(problems))
    cache = data.get("cache")
    if isinstance(cache, str) and "://" not in cache:
        data["cache"] = str((path.parent / Path(cache).expanduser()).resolve())
    return data


def resolve(
    *,
    cli: Mapping[str, Any],
    environ: Mapping[str, str],
    files: Sequence[tuple[str, Mapping[str, Any]]],
) -> dict[str, Setting]:
    """Each setting and its source. `files`: (shown name, settings), the repo config before the user's."""
    out: dict[str, Setting] = {}
    for name, key in KEYS.items():
        if cli.get(name) is not None:
            out[name] = Setting(name=name, value=cli[name], source=key.option)
        elif environ.get(key.env):
            value: Any = environ[key.env]
            if name == "jobs":
                value = int(value) if value.strip().isdigit() else value
            if (problem := key.check(value)) is not None:
                raise UsageError(f"{key.env}={environ[key.env]!r}: {problem}")
            out[name] = Setting(name=name, value=value, source=f"env {key.env}")
        else:
            found = next(((shown, data[name]) for shown, data in files if name in data), None)
            if found is None:
                out[name] = Setting(name=name, value=None, source="default")
            else:
                out[name] = Setting(name=name, value=found[1], source=found[0], from_file=True)
    return out


FLAGS = {
    "allow-dirty-push": "MLPIPE_ALLOW_DIRTY_PUSH",
    "cache-required": "MLPIPE_CACHE_REQUIRED",
}
"""On/off settings: a command-line flag or its variable (1, true, yes, on); not in config files."""

PLAIN_HTTP = "MLPIPE_PLAIN_HTTP"
DEPRECATED_PLAIN_HTTP = "MLPIPE_INSECURE_REGISTRY"
"""The old name of MLPIPE_PLAIN_HTTP (and `--insecure` of `--plain-http`): on means plain HTTP, as before."""
_YES, _NO = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _on(value: str | None) -> bool:
    return (value or "").lower() in _YES


def _plain_http(cli: Mapping[str, Any], env: Mapping[str, str]) -> tuple[bool | None, str]:
    """`--plain-http` / `--no-plain-http`, else MLPIPE_PLAIN_HTTP (None: plain HTTP to loopback hosts only), and
    where that came from."""
    given = cli.get("plain-http")
    if isinstance(given, bool):
        return given, "--plain-http" if given else "--no-plain-http"
    if cli.get("insecure") is True:
        return True, "--insecure"
    value = env.get(PLAIN_HTTP, "").strip().lower()
    if value in _YES | _NO:
        return value in _YES, f"env {PLAIN_HTTP}"
    if value:
        raise UsageError(
            f"{PLAIN_HTTP}={env[PLAIN_HTTP]!r}: expected true (plain HTTP) or false (HTTPS, also to loopback "
            "hosts); unset, plain HTTP goes to loopback hosts only"
        )
    if _on(env.get(DEPRECATED_PLAIN_HTTP)):
        return True, f"env {DEPRECATED_PLAIN_HTTP}"
    return None, "default"


@frozen(kw_only=True, eq=False, repr=False)
class Settings:
    """One command's settings, each with its source, and the environment it was read from (read once)."""

    values: Mapping[str, Setting] = field(default_factory=dict)
    """The config-file keys (KEYS): what `mlpipe config --show` prints."""
    environ: Mapping[str, str] = field(default_factory=dict)
    """The caller's environment as it was when the settings were read; no one writes it."""
    allow_dirty_push: bool = False
    plain_http: bool | None = None
    """Plain HTTP to the registry (True), HTTPS (False), or plain HTTP to loopback hosts only (None)."""
    cache_required: bool = False
    flag_sources: Mapping[str, str] = field(default_factory=dict)
    """Where each on/off flag (FLAGS, and plain-http) was set: its option, 'env VARIABLE', or 'default'."""

    def value(self, name: str) -> Any:
        setting = self.values.get(name)
        return None if setting is None else setting.value

    @property
    def cache(self) -> str | None:
        """`--cache`, MLPIPE_CACHE or a config file's `cache`: a directory or oci://HOST/REPO."""
        value = self.value("cache")
        return str(value) if value else None

    @property
    def remote_cache(self) -> str | None:
        """The `oci://` URL of the registry behind the local store, when the cache names one."""
        value = self.cache or ""
        return value if value.startswith("oci://") else None

    @property
    def jobs(self) -> int | None:
        value = self.value("jobs")
        return value if isinstance(value, int) else None

    @property
    def cache_mode(self) -> str:
        return str(self.value("cache-mode") or "auto")

    @property
    def retry_budget_s(self) -> float:
        """How long a registry request is retried (MLPIPE_REGISTRY_RETRY_BUDGET_S, default 30)."""
        return self._seconds("MLPIPE_REGISTRY_RETRY_BUDGET_S", 30.0)

    @property
    def kill_grace_s(self) -> float:
        """How long a stopped step gets between each signal and the next (MLPIPE_KILL_GRACE_S, default 10)."""
        return self._seconds("MLPIPE_KILL_GRACE_S", 10.0)

    @property
    def lock_timeout_s(self) -> float:
        """How long a run or gc waits for the workspace or the store (MLPIPE_LOCK_TIMEOUT, default 600)."""
        return self._seconds("MLPIPE_LOCK_TIMEOUT", 600.0)

    @property
    def github_throttle_s(self) -> float:
        """The least time between two updates of a GitHub check run (MLPIPE_GITHUB_THROTTLE_S, default 10)."""
        return self._seconds("MLPIPE_GITHUB_THROTTLE_S", 10.0)

    @property
    def protected_refs(self) -> tuple[str, ...]:
        """MLPIPE_PROTECTED_REFS: comma-separated ref patterns treated as protected."""
        value = self.environ.get("MLPIPE_PROTECTED_REFS", "")
        return tuple(p.strip() for p in value.split(",") if p.strip())

    def source(self, name: str) -> str:
        """Where a setting's value came from: its flag ('--jobs'), 'env MLPIPE_JOBS', 'mlpipe.toml', the user
        config's path, or 'default'. `name`: a config key (KEYS), an on/off flag (FLAGS) or an MLPIPE_* variable
        read from the environment alone."""
        if name in self.values:
            return self.values[name].source
        if name in self.flag_sources:
            return self.flag_sources[name]
        return f"env {name}" if self.environ.get(name, "").strip() else "default"

    def _seconds(self, variable: str, default: float) -> float:
        return env_seconds(self.environ, variable, default)


def env_seconds(environ: Mapping[str, str], variable: str, default: float) -> float:
    """A duration from the environment; a value that is no number names the variable (never a traceback)."""
    value = environ.get(variable, "")
    if not value.strip():
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if math.isnan(seconds):
        raise UsageError(f"{variable}={value!r}: expected a number of seconds") from None
    return max(0.0, seconds)


def settings(
    *,
    cli: Mapping[str, Any] = {},
    environ: Mapping[str, str] | None = None,
    files: Sequence[tuple[str, Mapping[str, Any]]] = (),
) -> Settings:
    """Settings from the command line (KEYS and FLAGS by name) and the environment, and the given files."""
    env = MappingProxyType(dict(os.environ if environ is None else environ))
    flags = {name: cli.get(name) is True or _on(env.get(var)) for name, var in FLAGS.items()}
    sources = {
        name: f"--{name}" if cli.get(name) is True else f"env {var}" if _on(env.get(var)) else "default"
        for name, var in FLAGS.items()
    }
    plain_http, sources["plain-http"] = _plain_http(cli, env)
    return Settings(
        values=resolve(cli=cli, environ=env, files=files),
        environ=env,
        allow_dirty_push=flags["allow-dirty-push"],
        plain_http=plain_http,
        cache_required=flags["cache-required"],
        flag_sources=MappingProxyType(sources),
    )


def load_settings(
    root: Path, *, cli: Mapping[str, Any] = {}, environ: Mapping[str, str] | None = None
) -> Settings:
    """The settings for the workspace at `root`, reading its `mlpipe.toml` and the user's config."""
    env = os.environ if environ is None else environ
    user = user_config_path(env)
    files = [
        (REPO_FILE, read_config(root / REPO_FILE, REPO_FILE)),
        (str(user), read_config(user, str(user))),
    ]
    return settings(cli=cli, environ=env, files=files)


def effective(settings: Settings, root: Path) -> list[Setting]:
    """Every setting as a command at `root` uses it: where nothing sets a value, the default it falls back
    to (the workspace's store, the core count, ...) and what that default is."""
    from mlpipe.paths import Workspace

    defaults = {
        "cache": (str(Workspace(root).state / "cache"), "default: .mlpipe/cache beside the pipeline file"),
        "jobs": (os.cpu_count() or 1, "default: this machine's core count"),
        "cache-mode": ("auto", "default"),
    }
    shown = [
        Setting(name=name, value=defaults[name][0], source=defaults[name][1])
        if s.value is None and name in defaults
        else s
        for name, s in settings.values.items()
    ]
    for name, var, value in (
        ("kill-grace-s", "MLPIPE_KILL_GRACE_S", settings.kill_grace_s),
        ("registry-retry-budget-s", "MLPIPE_REGISTRY_RETRY_BUDGET_S", settings.retry_budget_s),
    ):
        shown.append(
            Setting(name=name, value=value, source=f"env {var}" if var in settings.environ else "default")
        )
    on = {
        "allow-dirty-push": settings.allow_dirty_push,
        "cache-required": settings.cache_required,
    }
    for name in FLAGS:
        shown.append(Setting(name=name, value=on[name], source=settings.source(name)))
    plain = settings.plain_http
    source = settings.source("plain-http")
    shown.append(
        Setting(
            name="plain-http",
            value="only to this machine" if plain is None else plain,
            source="default: plain HTTP to loopback hosts only"
            if plain is None and source == "default"
            else source,
        )
    )
    return shown


def show_text(values: Sequence[Setting]) -> str:
    rows = [[s.name, _shown(s.value), s.source] for s in values]
    return table(["key", "value", "from"], rows)


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:g}" if isinstance(value, float) else str(value)
