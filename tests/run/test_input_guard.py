"""The input-modification guard: a step that changes a workspace input it was given fails, whatever the change,
even one that leaves size and mtime as they were (issue 18 made the check after the step cheaper; never weaker)."""

from __future__ import annotations

import pytest

from mlpipe_testing import Project

PIPELINE = """\
name: guard
steps:
  s:
    run: python3 tamper.py ${{ inputs.data }}
    inputs: {data: data}
"""

DATA = {"data/a.txt": "alpha\n", "data/sub/b.txt": "beta\n", "data/sub/deeper/c.txt": "gamma\n"}

TAMPER = {
    "modifies a file": "open(f'{data}/sub/b.txt', 'a').write('more')",
    "adds a file": "open(f'{data}/sub/new.txt', 'w').write('new')",
    "adds a file in a new directory": "os.mkdir(f'{data}/new'); open(f'{data}/new/x', 'w').write('x')",
    "removes a file": "os.remove(f'{data}/sub/deeper/c.txt')",
    "replaces a file by one of the same size and mtime": (
        "st = os.stat(f'{data}/sub/b.txt')\n"
        "open(f'{data}/sub/b.new', 'w').write('BETA\\n')\n"
        "os.utime(f'{data}/sub/b.new', ns=(st.st_atime_ns, st.st_mtime_ns))\n"
        "os.replace(f'{data}/sub/b.new', f'{data}/sub/b.txt')"
    ),
    "rewrites a file in place, size and mtime restored (only its ctime shows it)": (
        "st = os.stat(f'{data}/a.txt')\n"
        "open(f'{data}/a.txt', 'r+').write('ALPHA\\n')\n"
        "os.utime(f'{data}/a.txt', ns=(st.st_atime_ns, st.st_mtime_ns))\n"
        "after = os.stat(f'{data}/a.txt')\n"
        "assert (after.st_size, after.st_mtime_ns, after.st_ino) == (st.st_size, st.st_mtime_ns, st.st_ino)"
    ),
    "makes a file executable": "os.chmod(f'{data}/a.txt', 0o755)",
}


def project_with(project_factory, tamper: str) -> Project:
    script = f"import os, sys\ndata = sys.argv[1]\n{tamper}\n"
    return project_factory({"mlpipe.yaml": PIPELINE, "tamper.py": script, **DATA})


@pytest.mark.parametrize("change", list(TAMPER))
def test_a_step_that_changes_its_workspace_input_fails(project_factory, change: str) -> None:
    project = project_with(project_factory, TAMPER[change])
    project.run("ci-run").assert_code(1)
    step = project.record()["steps"]["s"]
    assert step["status"] == "failed"
    assert step["error"] == (
        "the step modified its input 'data'; inputs must stay unchanged: write to an output instead"
    )


@pytest.mark.parametrize(
    "touch",
    [
        "os.chmod(f'{data}/a.txt', 0o644)",  # the same mode: a new ctime, nothing else
        "st = os.stat(f'{data}/sub/b.txt'); os.utime(f'{data}/sub/b.txt', ns=(st.st_atime_ns, st.st_mtime_ns))",
    ],
)
def test_a_step_that_changes_only_stat_data_of_its_input_passes(project_factory, touch: str) -> None:
    # Stat data decide nothing alone: the content is compared before the step is failed.
    project = project_with(project_factory, touch)
    project.run("ci-run").assert_success()
    assert project.record()["steps"]["s"]["status"] == "ran"


@pytest.mark.parametrize("change", list(TAMPER))
def test_the_guard_checks_a_run_whose_input_digest_came_from_the_stat_cache(
    project_factory, change: str
) -> None:
    # The second run finds the data unchanged by its stat data (no file read); its step then changes it.
    project = project_with(project_factory, "pass")
    project.run("ci-run").assert_success()
    project.write({"tamper.py": f"import os, sys\ndata = sys.argv[1]\n{TAMPER[change]}\n"})
    project.commit()
    project.run("ci-run").assert_code(1)
    assert project.record()["steps"]["s"]["error"] == (
        "the step modified its input 'data'; inputs must stay unchanged: write to an output instead"
    )
