"""Config files: `mlpipe.toml` beside the pipeline file and the user's config; CLI > env > repo > user."""

from __future__ import annotations

import pytest

from mlpipe.config import Setting, resolve

PIPELINE = "name: demo\nsteps:\n  a:\n    code: src\n    run: echo hi > ${{ outputs.o }}\n    outputs: {o: {type: file}}\n"


def test_resolve_takes_the_first_that_sets_a_value() -> None:
    files = [
        ("mlpipe.toml", {"jobs": 3, "cache": "/r"}),
        ("~/.config/mlpipe/config.toml", {"jobs": 8, "cache-mode": "read"}),
    ]

    settings = resolve(cli={"cache": None}, environ={}, files=files)
    assert settings == {
        "cache": Setting(name="cache", value="/r", source="mlpipe.toml", from_file=True),
        "jobs": Setting(name="jobs", value=3, source="mlpipe.toml", from_file=True),
        "cache-mode": Setting(
            name="cache-mode", value="read", source="~/.config/mlpipe/config.toml", from_file=True
        ),
    }

    settings = resolve(cli={"jobs": 2}, environ={"MLPIPE_JOBS": "5", "MLPIPE_CACHE": "/e"}, files=files)
    assert [(s.value, s.source) for s in settings.values()] == [
        ("/e", "env MLPIPE_CACHE"),
        (2, "--jobs"),
        ("read", "~/.config/mlpipe/config.toml"),
    ]

    settings = resolve(cli={}, environ={"MLPIPE_JOBS": "5"}, files=[])
    assert [(s.value, s.source) for s in settings.values()] == [
        (None, "default"),
        (5, "env MLPIPE_JOBS"),
        (None, "default"),
    ]


def test_config_show_names_each_source(project_factory, tmp_path):
    project = project_factory(
        {"mlpipe.yaml": PIPELINE, "src/.keep": "", "mlpipe.toml": 'jobs = 3\ncache = "../shared"\n'}
    )
    user = tmp_path / "xdg/mlpipe/config.toml"
    user.parent.mkdir(parents=True)
    user.write_text('cache-mode = "read"\njobs = 8\n')
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}

    shown = project.run("config", "--show", env=env).assert_success().stdout
    lines = shown.splitlines()
    assert lines[0].split() == ["key", "value", "from"]
    assert [line.split() for line in lines[2:5]] == [
        ["cache", str(tmp_path / "shared"), "mlpipe.toml"],
        ["jobs", "3", "mlpipe.toml"],
        ["cache-mode", "read", str(user)],
    ]

    data = project.run(
        "config", "--show", "--json", "-j", "2", env={**env, "MLPIPE_CACHE_MODE": "off"}
    ).json()
    assert data["format"] == "mlpipe.config/1"
    assert {name: data["settings"][name] for name in ("cache", "jobs", "cache-mode")} == {
        "cache": {"value": str(tmp_path / "shared"), "source": "mlpipe.toml"},
        "jobs": {"value": 2, "source": "--jobs"},
        "cache-mode": {"value": "off", "source": "env MLPIPE_CACHE_MODE"},
    }


def test_ci_run_uses_the_repo_config(project_factory, tmp_path):
    project = project_factory(
        {"mlpipe.yaml": PIPELINE, "src/.keep": "", "mlpipe.toml": 'jobs = 3\ncache = "../shared"\n'}
    )

    record = project.run("ci-run", "--json").assert_success().json()

    assert record["options"]["jobs"] == 3
    assert (tmp_path / "shared").is_dir()
    assert not (project.root / ".mlpipe/cache").exists()
    assert project.run("ci-run", "--json", "-j", "1").assert_success().json()["options"]["jobs"] == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("job = 3\n", "error: mlpipe.toml: unknown key 'job'; did you mean 'jobs'?\n"),
        ("jobs = 0\n", "error: mlpipe.toml: jobs: expected a whole number of at least 1, found 0\n"),
        (
            'cache-mode = "rw"\n',
            "error: mlpipe.toml: cache-mode: expected one of: auto, read-write, read, off, found 'rw'\n",
        ),
        ("jobs = \n", "error: mlpipe.toml: invalid TOML: Invalid value (at line 1, column 8)\n"),
    ],
)
def test_a_bad_config_is_a_usage_error(project_factory, text, message):
    project = project_factory({"mlpipe.yaml": PIPELINE, "src/.keep": "", "mlpipe.toml": text})

    for command in (["config", "--show"], ["ci-run"]):
        outcome = project.run(*command)
        outcome.assert_code(2)
        assert outcome.stderr == message


def test_a_bad_environment_value_is_named(project_factory):
    project = project_factory({"mlpipe.yaml": PIPELINE, "src/.keep": ""})

    outcome = project.run("config", "--show", env={"MLPIPE_JOBS": "many"})

    outcome.assert_code(2)
    assert outcome.stderr == "error: MLPIPE_JOBS='many': expected a whole number of at least 1\n"
