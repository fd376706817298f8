"""A plain `mlpipe ci-run` / `mlpipe plan` runs without click (mlpipe/cli/plain.py), and says and does exactly
what the click-parsed command does: the same option values, output, errors and exit codes."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pytest

from mlpipe.api.source import Selected, Source
from mlpipe.cli import ci_run, plan
from mlpipe.cli.ci_run_body import run_ci
from mlpipe.cli.options import given_settings
from mlpipe.cli.plain import DEFAULT_SETTINGS, OPTION_VARIABLES
from mlpipe.cli.plan_body import run_plan

COMMANDS: list[tuple[click.Command, Callable[..., None]]] = [
    (ci_run.command, run_ci),
    (plan.command, run_plan),
]


@pytest.mark.parametrize(("command", "body"), COMMANDS, ids=["ci-run", "plan"])
def test_the_plain_path_passes_what_click_passes_for_no_option(
    command: click.Command, body: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The plain path runs body(Source(settings=DEFAULT_SETTINGS), Selected()) and every other argument's default.
    for name in OPTION_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with command.make_context(command.name or "", []) as ctx:
        parsed = dict(ctx.params)
        assert given_settings(parsed.pop("cache")) == DEFAULT_SETTINGS
    source, selection = Source(), Selected()
    assert (parsed.pop("file"), parsed.pop("params")) == (source.file, source.params)
    only = parsed.pop("only") + parsed.pop("steps", ())  # ci-run: --steps is --only
    chosen = (only, parsed.pop("from_"), parsed.pop("with_upstream"), parsed.pop("no_reuse"))
    assert chosen == (selection.only, selection.from_, selection.with_upstream, selection.no_reuse)
    rest = list(inspect.signature(body).parameters.values())[2:]
    assert parsed == {p.name: p.default for p in rest}


def test_every_variable_an_option_reads_sends_the_command_to_click() -> None:
    read = {
        name
        for command, _body in COMMANDS
        for param in command.params
        for name in ([param.envvar] if isinstance(param.envvar, str) else param.envvar or [])
    }
    assert read == set(OPTION_VARIABLES)


# `loud` waits for `ok`: the two run one after the other, so their progress lines come in one order.
PIPELINE = """\
name: demo
steps:
  ok:
    code: ok
    run: echo fine > ${{ outputs.o }}
    outputs: {o: {type: file}}
  loud:
    code: loud
    run: printf '\\033[31mred\\033[0m and plain\\n'; exit 3
    inputs:
      ok: ${{ steps.ok.outputs.o }}
    outputs: {o: {type: file}}
"""


def run(root: Path, args: list[str], *, click_path: bool) -> tuple[int, str, str, bool]:
    """Exit code, stdout, stderr (run ids and times blanked) and whether click was imported."""
    env = {k: v for k, v in os.environ.items() if k not in OPTION_VARIABLES and not k.startswith("GITHUB_")}
    if click_path:
        env["MLPIPE_PUBLISH_CHECKS"] = "true"  # its default: only the parsing differs
    code = (
        "import sys\nfrom mlpipe.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\nelse:\n    code = 0\n"
        "print('click' in sys.modules, file=sys.stderr)\nsys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        check=False,
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    *stderr, imported = done.stderr.splitlines()
    blank = lambda text: re.sub(r"\d{8}T\d+Z-[0-9a-f]+|\b[0-9a-f]{12,40}\b|\d+(\.\d+)?\s?m?s\b", "X", text)
    return done.returncode, blank(done.stdout), blank("\n".join(stderr)), imported == "True"


@pytest.mark.parametrize("args", [["ci-run"], ["plan"]])
def test_the_plain_path_says_and_exits_as_click_does(project_factory: Any, args: list[str]) -> None:
    files = {"mlpipe.yaml": PIPELINE, "ok/x": "x\n", "loud/x": "x\n"}
    plain, clicked = project_factory(files, name="plain"), project_factory(files, name="clicked")
    # The steps run (one fails, ANSI escapes in its log); then one is reused and the other fails again.
    for _attempt in range(2):
        said = run(plain.root, args, click_path=False)
        assert said == (*run(clicked.root, args, click_path=True)[:3], False)  # click: imported there only
    if args == ["ci-run"]:
        code, stdout, _stderr, _imported = said
        assert code == 1 and "| red and plain" in stdout  # the summary's log tail
    for project in (plain, clicked):
        project.write({"mlpipe.yaml": "name: demo\nsteps: [oops]\n"})
    said = run(plain.root, args, click_path=False)
    assert said == (*run(clicked.root, args, click_path=True)[:3], False)
    assert said[0] != 0 and "mlpipe.yaml" in said[2]


@pytest.mark.parametrize("message", ["plain text", "\x1b[31mred\x1b[0m and plain", "ünïcödé ✓", ""])
@pytest.mark.parametrize("err", [False, True])
def test_echo_writes_what_click_echo_writes(
    message: str, err: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlpipe.cli.echo import echo

    echo(message, err=err)
    ours = capsys.readouterr()
    click.echo(message, err=err)
    assert capsys.readouterr() == ours
