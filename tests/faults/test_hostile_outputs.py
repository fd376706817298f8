"""A step's outputs are untrusted input for the store.

Each case is one hostile thing a step can leave in its output. After the run: the step either failed with a
message naming the output and what is wrong in it, or its output was stored safely (copied, never sharing an
inode with a file outside); nothing outside the output changed (content, mode, inode, link count); the other
branch of the pipeline, running beside it under -j 2, ran and stored its result; and a later run works
without a traceback.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import fault_tally
import pytest
from fsck_testing import assert_store_whole

from mlpipe_testing import Project

RULE = "outputs may hold regular files, directories and symbolic links inside the output"
NAMES = "named in UTF-8 without control characters"
UNSTORABLE = f"; {RULE}, {NAMES}"


@dataclass(frozen=True)
class Case:
    run: str
    """The hostile step's command; OUT is its output's path, SECRET a file outside, HOME a directory outside."""
    error: str | None
    """The step's error, exactly; None: the output is stored safely."""
    type: str = "dir"


DEEP = " && ".join([f"mkdir {'d' * 200} && cd {'d' * 200}"] * 22)  # 4,422 bytes: longer than a path may be
LONG = "n" * 255  # the longest name a file system holds

CASES = {
    "output dir is a link to a dir outside": Case(
        'rmdir "$OUT" && ln -s "$HOME" "$OUT"',
        "the step's output 'o' is a symbolic link (to '{home}'); write the directory itself at "
        "$MLPIPE_OUTPUT_O, not a link to it",
    ),
    "output file is a link to a file outside": Case(
        'ln -s "$SECRET" "$OUT"',
        "the step's output 'o' is a symbolic link (to '{secret}'); write the file itself at "
        "$MLPIPE_OUTPUT_O, not a link to it",
        type="file",
    ),
    "absolute link inside": Case(
        'echo x > "$OUT/f"; ln -s "$SECRET" "$OUT/leak"',
        "the step's output 'o' holds a path that cannot be stored: link 'leak' -> '{secret}' is absolute: "
        "it points outside the tree" + UNSTORABLE,
    ),
    "relative link climbing out": Case(
        'echo x > "$OUT/f"; mkdir "$OUT/sub"; ln -s ../../secret "$OUT/sub/up"',
        "the step's output 'o' holds a path that cannot be stored: link 'sub/up' -> '../../secret' points "
        "outside the tree" + UNSTORABLE,
    ),
    "chain of links climbing out": Case(
        'mkdir "$OUT/d"; echo x > "$OUT/d/f"; ln -s d "$OUT/a"; ln -s a/../.. "$OUT/b"',
        "the step's output 'o' holds a path that cannot be stored: link 'b' -> 'a/../..' points outside the "
        "tree" + UNSTORABLE,
    ),
    "hard link to a file outside": Case('ln "$SECRET" "$OUT/hard"; echo x > "$OUT/f"', None),
    "link that stays inside": Case('echo x > "$OUT/f"; mkdir "$OUT/d"; ln -s ../f "$OUT/d/g"', None),
    "fifo": Case(
        'mkdir -p "$OUT/a"; mkfifo "$OUT/a/b"',
        f"the step's output 'o' holds a FIFO at 'a/b': {RULE}",
    ),
    "fifo as the metrics file": Case(
        'mkfifo "$OUT"',
        f"the step's output 'o' is a FIFO: {RULE}",
        type="metrics",
    ),
    "socket": Case(
        'cd "$OUT" && python -c "import socket; socket.socket(socket.AF_UNIX).bind(\'sock\')"',
        f"the step's output 'o' holds a socket at 'sock': {RULE}",
    ),
    "name that is not UTF-8": Case(
        'echo x > "$OUT/caf$(printf "\\351")"',
        "the step's output 'o' holds a path that cannot be stored: 'caf\\udce9' is not valid UTF-8"
        + UNSTORABLE,
    ),
    "name holding a newline": Case(
        'echo x > "$OUT/a$(printf "\\nb")"',
        "the step's output 'o' holds a path that cannot be stored: 'a\\nb' holds a control character (a "
        "newline, tab or other)" + UNSTORABLE,
    ),
    "path longer than a path may be": Case(
        f'cd "$OUT" && {DEEP} && echo x > f',
        "the step's output 'o' holds a path that cannot be stored: '"
        + "d" * 60
        + "'... is longer than 4096 bytes"
        + UNSTORABLE,
    ),
    "longest name": Case(f'echo x > "$OUT/{LONG}"', None),
}


def pipeline(case: Case, outside: Path) -> str:
    output = {"dir": "{}", "file": "{type: file}", "metrics": "{kind: metrics}"}[case.type]
    return f"""\
name: hostile
steps:
  evil:
    run: |
      OUT="$MLPIPE_OUTPUT_O"; SECRET="{outside}/secret"; HOME="{outside}/home"
      {case.run}
    outputs:
      o: {output}
  good:
    run: sleep 0.5; echo fine > ${{{{ outputs.o }}}}
    outputs:
      o: {{type: file}}
  after:
    run: cat ${{{{ inputs.x }}}} > ${{{{ outputs.o }}}}
    inputs: {{x: "${{{{ steps.good.outputs.o }}}}"}}
    outputs:
      o: {{type: file}}
"""


def state(top: Path) -> dict[str, tuple[bytes | str, int, int, int]]:
    """What must not change outside: each path's content (or link target), mode, inode and link count."""
    found = {}
    for path in [top, *top.rglob("*")]:
        st = path.lstat()
        content = os.readlink(path) if path.is_symlink() else path.read_bytes() if path.is_file() else b""
        found[str(path)] = (content, st.st_mode, st.st_ino, st.st_nlink)
    return found


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    top = tmp_path / "outside"
    (top / "home").mkdir(parents=True)
    (top / "home" / ".bashrc").write_text("sentinel\n")
    (top / "home" / ".bashrc").chmod(0o600)
    (top / "secret").write_text("secret\n")
    (top / "secret").chmod(0o640)
    return top


@pytest.mark.parametrize("name", list(CASES))
def test_a_hostile_output(name: str, project_factory, outside: Path) -> None:
    case = CASES[name]
    project: Project = project_factory({"mlpipe.yaml": pipeline(case, outside)})
    before = state(outside)

    first = project.run("ci-run", "-j", "2")

    record = project.record()
    assert "Traceback" not in first.output
    assert record["steps"]["good"]["status"] == "ran"
    assert record["steps"]["after"]["status"] == "ran"
    assert state(outside) == before
    if case.error is not None:
        first.assert_code(1)
        assert record["steps"]["evil"]["status"] == "failed"
        expected = case.error.format(home=outside / "home", secret=outside / "secret")
        assert record["steps"]["evil"]["error"] == expected
        assert f"evil: failed: {expected}" in first.stdout
    else:
        first.assert_success()
        stored = stored_files(project)
        for path in stored:  # no stored object shares its inode with a file outside
            assert path.stat().st_ino not in {st[2] for st in before.values()}
        if name == "hard link to a file outside":
            # Writing to the outside file afterwards reaches neither the store nor a later reuse.
            (outside / "secret").chmod(0o640)
            with open(outside / "secret", "a") as f:
                f.write("changed\n")
            before = state(outside)

    again = project.run("ci-run", "-j", "2")

    assert "Traceback" not in again.output
    record = project.record()
    assert record["steps"]["good"]["status"] == "reused"
    assert record["steps"]["after"]["status"] == "reused"
    assert state(outside) == before
    if case.error is not None:
        again.assert_code(1)
        assert record["steps"]["evil"]["error"] == case.error.format(
            home=outside / "home", secret=outside / "secret"
        )
    else:
        again.assert_success()
        assert record["steps"]["evil"]["status"] == "reused"
        project.run("pull", "evil.o", "--to", "check").assert_success()
        if name == "hard link to a file outside":
            assert (project.root / "check/o/hard").read_text() == "secret\n"
            assert not (project.root / "check/o/hard").samefile(outside / "secret")
    assert_store_whole(project.root / ".mlpipe/cache")
    fault_tally.record("hostile step output", runs_completed=2)


def stored_files(project: Project) -> list[Path]:
    objects = project.root / ".mlpipe/cache/objects"
    return [p for p in objects.rglob("*") if p.is_file()]


def test_an_outside_file_linked_into_an_output_keeps_its_mode_and_link_count(
    project_factory, outside
) -> None:
    secret = outside / "secret"
    project = project_factory(
        {
            "mlpipe.yaml": f"name: x\nsteps:\n  s:\n    run: ln {secret} ${{{{ outputs.o }}}}/hard\n"
            "    outputs: {o: {}}\n"
        }
    )
    project.run("ci-run").assert_success()
    st = secret.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_nlink) == (0o640, 1)
    assert_store_whole(project.root / ".mlpipe/cache")
