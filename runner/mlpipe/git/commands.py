"""Running git and finding repositories: argv lists, `-z` output, no inherited repository variables."""

from __future__ import annotations

import os
import subprocess
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path

from mlpipe.errors import GitError
from mlpipe.frozen import frozen

# Variables that say how to reach remotes or hold the user's configuration are kept; the ones naming a
# repository, index or object store (GIT_DIR, GIT_INDEX_FILE, GIT_WORK_TREE, ... set when mlpipe runs
# inside a git hook) would silently point our commands elsewhere. Same list as pre-commit's `no_git_env`.
_KEPT_GIT_VARS = frozenset(
    {
        "GIT_EXEC_PATH",
        "GIT_SSH",
        "GIT_SSH_COMMAND",
        "GIT_SSL_CAINFO",
        "GIT_SSL_NO_VERIFY",
        "GIT_CONFIG_COUNT",
        "GIT_CONFIG_GLOBAL",
        "GIT_CONFIG_SYSTEM",
        "GIT_CONFIG_NOSYSTEM",
        "GIT_HTTP_PROXY_AUTHMETHOD",
        "GIT_ALLOW_PROTOCOL",
        "GIT_ASKPASS",
    }
)


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The current environment without the `GIT_*` variables that would redirect git: the environment of a git
    process mlpipe starts (a child's environment, built from this process's as a step's is in `ownvars`)."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("GIT_")
        or name in _KEPT_GIT_VARS
        or name.startswith(("GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_"))
    }
    env["GIT_TERMINAL_PROMPT"] = "0"
    if extra:
        env.update(extra)
    return env


def run_git(
    args: Sequence[str],
    cwd: Path,
    *,
    stdin: bytes | None = None,
    env: Mapping[str, str] | None = None,
    ok_codes: Sequence[int] = (0,),
) -> bytes:
    """Run `git ARGS` in `cwd` and return its stdout; another exit code raises GitError with git's stderr."""
    argv = ["git", *args]
    try:
        result = subprocess.run(
            argv, cwd=cwd, input=stdin, capture_output=True, env=git_env(env), check=False
        )
    except FileNotFoundError:
        raise GitError(_NO_GIT) from None
    return _checked(argv, result.returncode, result.stdout, result.stderr, ok_codes)


_NO_GIT = "git is not installed or not on PATH; mlpipe needs git to read the repository"


def _checked(argv: list[str], code: int, stdout: bytes, stderr: bytes, ok_codes: Sequence[int]) -> bytes:
    if code not in ok_codes:
        said = stderr.decode(errors="replace").strip()
        raise GitError(f"`{' '.join(argv)}` failed with exit code {code}: {said}")
    return stdout


class StartedGit:
    """`git ARGS` started now and read later, so that it runs while this process does other work: `output()`
    waits for it and returns what `run_git` would (or raises as it does). Started but never read (the command
    failed on the way), it is stopped and reaped when this object goes."""

    def __init__(self, args: Sequence[str], cwd: Path, *, ok_codes: Sequence[int] = (0,)) -> None:
        self.argv = ["git", *args]
        self.ok_codes = ok_codes
        self.process: subprocess.Popen[bytes] | None = None
        """The running git; None when git is not installed."""
        try:
            self.process = subprocess.Popen(
                self.argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=git_env()
            )
        except FileNotFoundError:
            return  # said by output(), where run_git would say it
        weakref.finalize(self, _reap, self.process)

    def output(self) -> bytes:
        """git's stdout; call once."""
        if self.process is None:
            raise GitError(_NO_GIT)
        stdout, stderr = self.process.communicate()
        return _checked(self.argv, self.process.returncode, stdout, stderr, self.ok_codes)


def _reap(process: subprocess.Popen[bytes]) -> None:
    if process.returncode is None:
        process.kill()
        process.communicate()


def split_z(output: bytes) -> list[str]:
    """Split `-z` output into paths (surrogate-escaped like os.fsdecode), dropping the final empty field."""
    return [os.fsdecode(part) for part in output.split(b"\0") if part]


@frozen(eq=False, repr=False)
class RepoPaths:
    """Where a work tree's pieces live; `git_dir` differs from `common_dir` in linked worktrees."""

    root: Path
    git_dir: Path
    common_dir: Path

    @property
    def index(self) -> Path:
        return self.git_dir / "index"


def find_repo(path: Path) -> RepoPaths | None:
    """The repository whose work tree holds `path`, found by looking for `.git` upwards; None outside git.

    Read from the files rather than `git rev-parse`, because this runs before every command.
    """
    path = path.resolve()
    for candidate in (path, *path.parents):
        dotgit = candidate / ".git"
        if dotgit.is_dir():
            git_dir = dotgit
        elif dotgit.is_file():
            # A linked worktree or submodule: ".git" is a file holding "gitdir: <path>".
            text = dotgit.read_text(encoding="utf-8", errors="surrogateescape").strip()
            if not text.startswith("gitdir:"):
                continue
            git_dir = (candidate / text.removeprefix("gitdir:").strip()).resolve()
        else:
            continue
        common_file = git_dir / "commondir"
        common_dir = git_dir
        if common_file.is_file():
            common_dir = (git_dir / common_file.read_text().strip()).resolve()
        return RepoPaths(root=candidate, git_dir=git_dir, common_dir=common_dir)
    return None
