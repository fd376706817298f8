"""Every module imports alone (no hidden import cycles), and the CLI's start-up imports no heavy backend.

Each check runs in a fresh interpreter, as pip-tools' tests/test_circular_imports.py does: inside this
process the modules are already imported and a cycle would go unnoticed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import mlpipe
from mlpipe.cli.main import COMMANDS

PACKAGE = Path(mlpipe.__file__).parent


def module_names() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__main__":
            continue  # runs the CLI when imported; checked by test_python_dash_m_runs_the_cli
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


def python(code: str, *, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    # Outside GitHub Actions, as a developer's no-op: a job's context is read there, a release tag honoured;
    # and without a user config file (the TOML parser loads only where one exists).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "MLPIPE_"))}
    env["XDG_CONFIG_HOME"] = "/nonexistent/mlpipe-test-imports"
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=cwd,
        env=env,
    )


def test_the_module_list_is_complete() -> None:
    names = module_names()
    assert {
        "mlpipe",
        "mlpipe.cli.main",
        "mlpipe.cache.local",
        "mlpipe.spec.model",
        "mlpipe.core.plan",
    } <= set(names)
    assert len(names) == len(set(names)) > 30


@pytest.mark.parametrize("module", module_names())
def test_each_module_imports_alone(module: str) -> None:
    result = python(f"import {module}")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


HEAVY = ("docker", "oras", "requests", "truststore", "rich")
"""Imported only inside the backend that uses them, so `mlpipe --help` and `mlpipe plan` start fast."""


@pytest.mark.parametrize("module", ["mlpipe.cli.main", *sorted(module for module, _ in COMMANDS.values())])
def test_cli_modules_do_not_import_heavy_libraries(module: str) -> None:
    result = python(
        f"import sys, {module}\n"
        f"print(sorted({{name.split('.')[0] for name in sys.modules}} & {set(HEAVY)!r}))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[]\n"


def test_the_check_sees_a_heavy_import() -> None:
    # Guards the test above against checking nothing: a module that does import one is caught.
    result = python(
        "import sys, json\n"
        f"print(sorted({{name.split('.')[0] for name in sys.modules}} & {{'json', *{HEAVY!r}}}))"
    )
    assert result.stdout == "['json']\n"


DISPATCH = (
    "mlpipe.cli.main",
    "mlpipe.cli.commands",
    "mlpipe.cli.group",
    "mlpipe.cli.plain",
    "mlpipe.cli.echo",
)
"""The CLI's modules that find the command (click's group, or the plain path for a bare `ci-run`/`plan`)."""


def test_help_imports_no_command_module() -> None:
    result = python(
        f"import sys\nfrom mlpipe.cli.main import main\nDISPATCH = {DISPATCH!r}\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(name for name in sys.modules if name.startswith('mlpipe.cli.') and name not in DISPATCH))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("\n[]\n")
    for name in COMMANDS:
        assert f"  {name} " in result.stdout


def test_python_dash_m_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mlpipe", "--version"], capture_output=True, text=True, check=False, timeout=60
    )
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        f"mlpipe, version {mlpipe.__version__}\n",
        "",
    )


NOT_ON_THE_NO_OP = ("difflib", "random", "mlpipe.core.compare", "mlpipe.github.history")
"""Loaded only when used: suggestions for a mistyped key, a comparison with a base run, GitHub's trend charts.
A no-op `ci-run` or `plan` pays for none of them (bench/README.md, issue 18)."""

NOT_ON_A_PLAIN_NO_OP = ("click", "gettext", "uuid", "platform", "datetime")
"""Not loaded by a plain `mlpipe ci-run` / `mlpipe plan` (no option: mlpipe/cli/plain.py, no click), whose temp
names come from os.urandom, its platform id from os.uname and its timestamps from time (issue 18)."""


NOT_UNTIL_A_STEP_RUNS = (
    "socket",
    "tomllib",
    "unicodedata",
    "mlpipe.executors.base",
    "mlpipe.executors.choose",
    "mlpipe.executors.gpus",
    "mlpipe.executors.host",
    "mlpipe.executors.orphans",
    "mlpipe.executors.stopping",
    "mlpipe.images.provide",
    "mlpipe.images.pushed",
    "mlpipe.cache.image_artifacts",
    "mlpipe.cache.logins",
    "mlpipe.release.baseline",
    "mlpipe.release.manifest",
    "mlpipe.github.context",
)
"""Loaded when a step runs (the executors, GPUs; the orphan-step reaper only when a killed mlpipe left a step's
record), when a step has `build:` (the image modules), or in a GitHub Actions job (its context, a pull request's
base run, a release tag); the TOML parser only where a config file exists, `unicodedata` only for a failed
step's log tail: a no-op `ci-run` or `plan` outside Actions without config files loads none of them (issue 18)."""


@pytest.mark.parametrize("module", ["mlpipe.cli.ci_run", "mlpipe.cli.plan"])
def test_the_no_op_path_does_not_import_what_it_does_not_use(module: str) -> None:
    unused = {*NOT_ON_THE_NO_OP, *NOT_UNTIL_A_STEP_RUNS}
    result = python(f"import sys, {module}\nprint(sorted(set(sys.modules) & {unused!r}))")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[]\n"


def one_step_repo(tmp_path: Path) -> Path:
    from mlpipe_testing import make_repo

    pipeline = "name: demo\nsteps:\n  a:\n    code: src\n    run: echo hi > ${{ outputs.o }}\n    outputs: {o: {type: file}}\n"
    files = {"mlpipe.yaml": pipeline, "src/a.txt": "a\n", ".gitignore": ".mlpipe/\n"}
    return make_repo(tmp_path / "repo", files)


def test_a_no_op_ci_run_imports_no_comparison(tmp_path: Path) -> None:
    # The whole no-op run, not only its module: nothing on the way loads the comparison or the suggestions.
    root = one_step_repo(tmp_path)
    code = (
        "import os, sys\n"
        f"os.chdir({str(root)!r})\n"
        "from mlpipe.cli.main import main\n"
        "for _ in range(2):\n"
        "    try:\n        main(['ci-run'])\n    except SystemExit as e:\n        assert e.code == 0, e.code\n"
        f"print(sorted(set(sys.modules) & {set(NOT_ON_THE_NO_OP)!r}))"
    )
    result = python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("\n[]\n"), result.stdout


@pytest.mark.parametrize("command", ["ci-run", "plan"])
def test_a_no_op_loads_no_executor_image_release_or_github_module(tmp_path: Path, command: str) -> None:
    # The whole command after a run that stored every result: reusing a step starts no executor, and a
    # pipeline without `build:` outside GitHub Actions needs no image, release or GitHub module.
    from mlpipe_testing import make_repo

    pipeline = "name: demo\nsteps:\n  a:\n    code: src\n    run: echo hi > ${{ outputs.o }}\n    outputs: {o: {type: file}}\n"
    root = make_repo(
        tmp_path / "repo", {"mlpipe.yaml": pipeline, "src/a.txt": "a\n", ".gitignore": ".mlpipe/\n"}
    )
    run = "from mlpipe.cli.main import main\ntry:\n    main({!r})\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
    first = python(run.format(["ci-run"]), cwd=root)
    assert first.returncode == 0, first.stderr
    unused = {*NOT_ON_THE_NO_OP, *NOT_UNTIL_A_STEP_RUNS, *NOT_ON_A_PLAIN_NO_OP}
    result = python(
        run.format([command]) + f"import sys\nprint(sorted(set(sys.modules) & {unused!r}))", cwd=root
    )
    assert result.returncode == 0, result.stderr
    assert "reuse" in result.stdout, result.stdout  # step a is reused: nothing ran
    assert result.stdout.endswith("\n[]\n"), result.stdout
    # The check can see them: a run that starts a step loads the host executor.
    loaded = python(
        run.format(["ci-run", "--no-reuse"]) + "import sys\nprint('mlpipe.executors.host' in sys.modules)",
        cwd=root,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.endswith("\nTrue\n"), loaded.stdout


@pytest.mark.parametrize("command", ["ci-run", "plan"])
def test_a_no_op_with_a_warm_pipeline_cache_imports_no_yaml(tmp_path: Path, command: str) -> None:
    # The first run parses mlpipe.yaml and stores it parsed (run/pipecache.py); the next one reads that and
    # neither imports PyYAML nor the loader and its checks.
    root = one_step_repo(tmp_path)
    code = (
        "import os, sys\n"
        f"os.chdir({str(root)!r})\n"
        "from mlpipe.cli.main import main\n"
        f"try:\n    main([{command!r}])\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "print(sorted(n for n in sys.modules if n.split('.')[0] == 'yaml' or n == 'mlpipe.spec.load'))"
    )
    first = python(code.replace(f"main([{command!r}])", "main(['ci-run'])"))
    assert first.returncode == 0, first.stderr
    assert "'mlpipe.spec.load', 'yaml'" in first.stdout  # a cold cache parses: the check sees the import
    result = python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("\n[]\n"), result.stdout


NO_OP_DATACLASSES = (
    "import dataclasses, sys\n"
    "classes = [c for m in list(sys.modules.values()) if getattr(m, '__name__', '').startswith('mlpipe')\n"
    "           for c in vars(m).values() if isinstance(c, type) and c.__module__ == m.__name__\n"
    "           and dataclasses.is_dataclass(c)]\n"
)


def no_op_dataclasses(tmp_path: Path, command: str, report: str) -> tuple[int, str]:
    """After a warm no-op `command`, what `report` (code that sees `classes`, the mlpipe dataclasses loaded)
    prints as "COUNT REST": (COUNT, REST)."""
    root = one_step_repo(tmp_path)
    run = "from mlpipe.cli.main import main\ntry:\n    main({!r})\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
    first = python(run.format(["ci-run"]), cwd=root)
    assert first.returncode == 0, first.stderr
    result = python(run.format([command]) + NO_OP_DATACLASSES + report, cwd=root)
    assert result.returncode == 0, result.stderr
    count, rest = result.stdout.splitlines()[-1].split(" ", 1)
    return int(count), rest


@pytest.mark.parametrize("command", ["ci-run", "plan"])
def test_every_dataclass_on_the_no_op_path_has_a_docstring(tmp_path: Path, command: str) -> None:
    # @dataclass gives a class without a docstring one made from `inspect.signature(cls)`, about 0.1 ms a class
    # at import on Python 3.11: the no-op imports some 60 of them (bench/README.md, issue 18).
    count, undocumented = no_op_dataclasses(
        tmp_path,
        command,
        "print(len(classes), sorted(c.__qualname__ for c in classes if c.__doc__.startswith(c.__name__ + '(')))",
    )
    assert count > 40  # the check sees the no-op's dataclasses
    assert undocumented == "[]"


@pytest.mark.parametrize("command", ["ci-run", "plan"])
def test_no_dataclass_on_the_no_op_path_compiles_its_own_setattr(tmp_path: Path, command: str) -> None:
    # @dataclass(frozen=True) `exec`s a __setattr__ and a __delattr__ of the class's own at import (~0.15 ms a
    # class on Python 3.11); @frozen (mlpipe/frozen.py) shares one pair: the no-op loads ~55 frozen classes.
    count, generated = no_op_dataclasses(
        tmp_path,
        command,
        "from mlpipe.frozen import frozen\n"
        "shared = [c for c in classes if c.__setattr__ is frozen(type('Probe', (), {})).__setattr__]\n"
        "print(len(shared), sorted(c.__qualname__ for c in classes if '__setattr__' in vars(c) and c not in shared))",
    )
    assert count > 40  # the check sees the no-op's frozen classes
    assert generated == "[]"


COMPARED_BY_IDENTITY = (
    "mlpipe.api.ci_run:CiRunOptions Released RunResult",
    "mlpipe.api.plan:PlanOptions PlanResult",
    "mlpipe.api.source:Source",
    "mlpipe.cache.base:Handed",
    "mlpipe.config:Key Settings",
    "mlpipe.core.plan:Facts StepPlan Plan Decision",
    "mlpipe.core.reasons:Earlier FileChange Why",
    "mlpipe.git.commands:RepoPaths",
    "mlpipe.git.provenance:SnapshotRef",
    "mlpipe.git.snapshot:SnapshotFile Snapshot",
    "mlpipe.inputs.base:RegistryAccess",
    "mlpipe.paths:Workspace",
    "mlpipe.run.locks:Holder RunLocks",
    "mlpipe.run.prepare:Selected Prepared Work StepWork Site",
    "mlpipe.run.runner:RunOptions _Finished",
    "mlpipe.run.session:Session",
)
"""Dataclasses of the no-op path that nothing compares or hashes by value (found with every generated __eq__,
__hash__ and __repr__ recorded while tests/{spec,core,run,cli,api,cache,git,report,github} ran, and by grep):
`eq=False, repr=False` spare the generated `__eq__`, `__hash__` and `__repr__`, each an `exec` at import (issue 18)."""


@pytest.mark.parametrize("entry", COMPARED_BY_IDENTITY)
def test_dataclasses_nothing_compares_or_prints_generate_no_equality_or_repr(entry: str) -> None:
    import dataclasses
    import importlib

    module_name, names = entry.split(":")
    module = importlib.import_module(module_name)
    for name in names.split():
        cls = getattr(module, name)
        assert dataclasses.is_dataclass(cls)
        assert "__eq__" not in vars(cls), name
        assert "__hash__" not in vars(cls), name
        assert "__repr__" not in vars(cls), name
