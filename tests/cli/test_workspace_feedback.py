"""The workspace as a new user meets it: `.mlpipe/` stays out of git, `pull` says when it dirties the tree,
failures come with their log's end, `show` keeps the pipeline's order, prefixes are checked, help is honest."""

from __future__ import annotations

import os
import re
from pathlib import Path

from mlpipe_testing import Project, git, make_repo

FAILING = """\
name: fails
steps:
  zeta:
    run: echo z
  alpha:
    run: |
      for i in $(seq 1 30); do echo "line $i"; done
      printf 'red \\033[31mtext\\033[0m bell\\a\\n'
      printf '%0400d\\n' 7
      echo '::error::not a workflow command'
      exit 3
  mid:
    run: echo m
    needs: [zeta]
"""

PULLED = """\
name: pulled
steps:
  make:
    run: echo made > ${{ outputs.model }}
    outputs:
      model: {type: file}
"""


def bare_project(tmp_path: Path, files: dict[str, str]) -> Project:
    """A repository with no .gitignore of its own (project_factory ignores `.mlpipe/` for the tests)."""
    return Project(make_repo(tmp_path / "bare", files))


def test_the_state_dir_ignores_itself_so_git_add_all_commits_none_of_it(tmp_path):
    project = bare_project(tmp_path, {"mlpipe.yaml": PULLED})

    project.run("ci-run").assert_success()

    assert (project.root / ".mlpipe/.gitignore").read_text().splitlines()[-1] == "*"
    assert project.git("status", "--porcelain", "--untracked-files=all") == ""
    project.git("add", "-A")
    assert project.git("diff", "--cached", "--name-only") == ""
    assert project.run("plan").assert_success().stdout.split("\n")[2].split()[:2] == ["make", "reuse"]


def test_a_state_dir_made_before_gets_its_gitignore(tmp_path):
    project = bare_project(tmp_path, {"mlpipe.yaml": PULLED})
    (project.root / ".mlpipe/runs").mkdir(parents=True)  # as an older mlpipe left it

    project.run("plan").assert_success()

    assert project.git("status", "--porcelain", "--untracked-files=all") == ""


def test_a_spec_error_still_makes_no_state_dir(tmp_path):
    project = bare_project(tmp_path, {"mlpipe.yaml": "name: x\nsteps:\n  a: {run: 3}\n"})
    project.run("ci-run").assert_code(2)
    assert not (project.root / ".mlpipe").exists()


WARNING = (
    "mlpipe: warning: git does not ignore what was written (model), so the next run is dirty and a step "
    "whose code directory holds it gets a new snapshot; add it to .gitignore, or pull with --to DIR into a "
    "directory git ignores (e.g. --to .mlpipe/pulled)\n"
)


def test_pull_into_the_workspace_warns_when_it_makes_the_next_run_dirty(tmp_path):
    project = bare_project(tmp_path, {"mlpipe.yaml": PULLED})
    project.run("ci-run").assert_success()

    pulled = project.run("pull", "make").assert_success()
    assert pulled.stdout == "make.model -> model\n"
    assert pulled.stderr == WARNING
    assert project.git("status", "--porcelain") == "?? model\n"

    (project.root / "model").unlink()
    into_state = project.run("pull", "make", "--to", ".mlpipe/pulled").assert_success()
    assert into_state.stderr == ""
    assert (project.root / ".mlpipe/pulled/model").read_text() == "made\n"

    project.write({".gitignore": "/model\n"})
    project.commit()
    project.run("ci-run").assert_success()
    assert project.run("pull", "make").assert_success().stderr == ""
    assert project.git("status", "--porcelain") == ""


def test_a_failed_step_shows_its_error_log_path_and_last_lines_in_the_summary_and_in_show(project_factory):
    project = project_factory({"mlpipe.yaml": FAILING})

    run = project.run("ci-run").assert_code(1)

    record = project.record()
    log = record["steps"]["alpha"]["log"]
    assert log == f".mlpipe/logs/{record['run_id']}/alpha.log"
    expected = (
        f"alpha failed: exited with code 3 (log: {log})\n"
        "  last 10 line(s) of its log:\n"
        + "".join(f"  | line {i}\n" for i in range(24, 31))
        + "  | red text bell\n"
        + "  | "
        + "0" * 299
        + "…\n"
        + "  | ::error::not a workflow command\n"
    )
    assert run.stdout.endswith("\n\n" + expected), run.stdout
    shown = project.run("show").assert_success().stdout
    assert shown.endswith("\n\n" + expected), shown
    assert "\x1b" not in shown and "\a" not in shown
    assert not re.search(r"^::", shown, re.MULTILINE)  # no log line can pass for a workflow command


def test_show_lists_steps_in_pipeline_order_not_alphabetically(project_factory):
    project = project_factory({"mlpipe.yaml": FAILING})
    project.run("ci-run").assert_code(1)

    shown = project.run("show").assert_success().stdout
    table = shown.split("step  ", 1)[1].split("\n\n")[0].splitlines()[2:]
    assert [row.split()[0] for row in table] == ["zeta", "alpha", "mid"]
    assert project.record()["order"] == ["zeta", "alpha", "mid"]


def test_checkout_says_a_prefix_is_ambiguous_as_show_does(project_factory):
    project = project_factory({"mlpipe.yaml": PULLED})
    project.run("ci-run").assert_success()
    project.run("ci-run").assert_success()
    prefix = project.record()["run_id"][:4]  # the year: both runs have it

    shown = project.run("show", prefix).assert_code(2)
    checkout = project.run("checkout", prefix).assert_code(2)

    assert f"error: run id prefix {prefix!r} is ambiguous (2 runs: " in shown.stderr
    assert checkout.stderr == shown.stderr
    assert (
        project.run("checkout", "nosuchrun")
        .assert_code(2)
        .stderr.startswith("error: no run matches 'nosuchrun'")
    )


def test_config_show_prints_the_effective_defaults_and_their_sources(project_factory, tmp_path):
    project = project_factory({"mlpipe.yaml": PULLED})
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "MLPIPE_REGISTRY_RETRY_BUDGET_S": "3"}

    shown = project.run("config", "--show", env=env).assert_success().stdout

    cores = os.cpu_count()
    rows = [re.split(r"\s{2,}", line) for line in shown.splitlines()[2:]]
    assert rows == [
        ["cache", str(project.root / ".mlpipe/cache"), "default: .mlpipe/cache beside the pipeline file"],
        ["jobs", str(cores), "default: this machine's core count"],
        ["cache-mode", "auto", "default"],
        ["kill-grace-s", "10", "default"],
        ["registry-retry-budget-s", "3", "env MLPIPE_REGISTRY_RETRY_BUDGET_S"],
        ["allow-dirty-push", "no", "default"],
        ["cache-required", "no", "default"],
        ["plain-http", "only to this machine", "default: plain HTTP to loopback hosts only"],
    ]
    data = project.run("config", "--show", "--json", "--cache-mode", "read", env=env).json()
    assert data["settings"]["jobs"] == {"value": cores, "source": "default: this machine's core count"}
    assert data["settings"]["cache-mode"] == {"value": "read", "source": "--cache-mode"}
    data = project.run("config", "--show", "--json", env={**env, "MLPIPE_PLAIN_HTTP": "1"}).json()
    assert data["settings"]["plain-http"] == {"value": True, "source": "env MLPIPE_PLAIN_HTTP"}


def options_of(help_text: str) -> list[str]:
    return re.findall(r"^  (-[-\w]*|--[-\w]+)", help_text.split("Options:")[1], re.MULTILINE)


def test_pull_help_offers_only_options_that_mean_something_there(project_factory):
    project = project_factory({"mlpipe.yaml": PULLED})

    pull = project.run("pull", "--help").assert_success().stdout
    data_pull = project.run("data", "pull", "--help").assert_success().stdout

    reading = ["--cache", "--plain-http", "--cache-required", "-h"]
    assert options_of(pull) == ["--to", "-f", "-p", *reading]
    assert options_of(data_pull) == ["-f", *reading]
    assert "--allow-dirty-push" in project.run("data", "push", "--help").stdout
    assert (
        project.run("pull", "make", "--allow-dirty-push")
        .assert_code(2)
        .stderr.endswith("Error: No such option '--allow-dirty-push'.\n")
    )


def test_data_help_lists_each_command_whole(project_factory):
    project = project_factory({"mlpipe.yaml": PULLED})
    shown = project.run("data", "--help").assert_success().stdout
    commands = shown.split("Commands:\n")[1]
    assert "..." not in commands
    assert [line.split()[0] for line in commands.splitlines()] == ["add", "import", "pull", "push"]


def test_git_status_in_a_subdirectory_workspace_stays_clean(tmp_path):
    root = make_repo(tmp_path / "mono", {"ml/mlpipe.yaml": PULLED, "README": "x\n"})
    Project(root / "ml").run("ci-run").assert_success()
    assert git(root, "status", "--porcelain", "--untracked-files=all") == ""


def test_a_store_made_inside_the_repository_ignores_itself_and_leaves_the_next_run_clean(tmp_path):
    project = bare_project(tmp_path, {"mlpipe.yaml": PULLED})

    project.run("ci-run", "--cache", "shared-store").assert_success()

    assert (project.root / "shared-store/.gitignore").read_text().splitlines()[-1] == "*"
    assert project.git("status", "--porcelain", "--untracked-files=all") == ""
    project.run("ci-run", "--cache", "shared-store").assert_success()
    assert project.record()["git"]["dirty"] is False


def test_a_store_directory_that_holds_files_of_its_own_is_left_without_a_gitignore(tmp_path):
    project = bare_project(tmp_path, {"mlpipe.yaml": PULLED, "mine/notes.txt": "the user's\n"})

    project.run("ci-run", "--cache", "mine").assert_success()

    assert not (project.root / "mine/.gitignore").exists()
