"""Git provenance and the snapshot ref, checked with git itself."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from mlpipe.git.provenance import GitInfo, git_info, strip_credentials, web_url, write_snapshot_ref
from mlpipe.git.snapshot import Snapshotter
from mlpipe_testing import git, make_repo, write_files


def loose_objects(repo: Path) -> int:
    counts = dict(line.split(": ") for line in git(repo, "count-objects", "-v").splitlines())
    return int(counts["count"])


def test_branch_commit_and_clean(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.py": "a\n"})
    info = git_info(repo / ".")
    assert info == GitInfo(
        in_repo=True,
        root=repo.resolve(),
        commit=git(repo, "rev-parse", "HEAD").strip(),
        branch="main",
        ref="refs/heads/main",
        dirty=False,
        dirty_paths=(),
        remote=None,
    )
    assert GitInfo.from_json(info.to_json()) == info


def test_detached_head_and_tag(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.py": "a\n"})
    git(repo, "commit", "-q", "--allow-empty", "-m", "second")
    git(repo, "checkout", "-q", "--detach", "HEAD~1")
    info = git_info(repo)
    assert (info.branch, info.ref, info.commit) == (None, None, git(repo, "rev-parse", "HEAD").strip())
    git(repo, "tag", "v1.0")
    assert git_info(repo).ref == "refs/tags/v1.0"


def test_dirty_paths_follow_git_status(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {"tracked.py": "t\n", "staged.py": "s\n", "old name.py": "o\n", ".gitignore": "*.log\n"},
    )
    write_files(repo, {"tracked.py": "changed\n", "new dir/untracked é.py": "u\n", "debug.log": "ignored\n"})
    write_files(repo, {"staged.py": "staged\n", ".mlpipe/runs/r.json": "{}", "sub/.mlpipe/x": "y"})
    git(repo, "add", "staged.py")
    git(repo, "mv", "old name.py", "new name.py")
    info = git_info(repo)
    assert info.dirty
    assert info.dirty_paths == (
        "new dir/untracked é.py",
        "new name.py",
        "old name.py",
        "staged.py",
        "tracked.py",
    )
    # git is the oracle: porcelain v1 lists "XY path", a rename followed by its original path
    fields = iter(git(repo, "status", "--porcelain=v1", "-z", "--untracked-files=all").split("\0"))
    listed = set()
    for field in fields:
        if field:
            listed.add(field[3:])
            if field[0] in "RC":
                listed.add(next(fields))
    assert ".mlpipe/runs/r.json" in listed
    # a pipeline in a subdirectory keeps its state in sub/.mlpipe: never a dirty path either
    assert set(info.dirty_paths) == listed - {".mlpipe/runs/r.json", "sub/.mlpipe/x"}


def test_untracked_state_dir_alone_is_clean(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.py": "a\n"})
    write_files(repo, {".mlpipe/runs/r.json": "{}"})
    assert not git_info(repo).dirty


def test_remote_credentials_are_stripped(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.py": "a\n"})
    git(repo, "remote", "add", "upstream", "git@github.com:org/up.git")
    assert git_info(repo).remote == "git@github.com:org/up.git"  # no origin: the first remote
    git(repo, "remote", "add", "origin", "https://x-access-token:ghs_secret@github.com/org/repo.git")
    info = git_info(repo)
    assert info.remote == "https://github.com/org/repo.git"
    assert "ghs_secret" not in str(info.to_json())


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:tok@host/x", "https://host/x"),
        ("https://tok@host:8443/x.git", "https://host:8443/x.git"),
        ("ssh://git@host/x.git", "ssh://git@host/x.git"),
        ("ssh://git:pw@host/x.git", "ssh://host/x.git"),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
        ("/srv/git/r.git", "/srv/git/r.git"),
    ],
)
def test_strip_credentials(url: str, expected: str) -> None:
    assert strip_credentials(url) == expected


@pytest.mark.parametrize(
    ("remote", "expected"),
    [
        ("https://github.com/org/repo.git", "https://github.com/org/repo"),
        ("https://github.com/org/repo", "https://github.com/org/repo"),
        ("git@github.com:org/repo.git", "https://github.com/org/repo"),
        ("ssh://git@github.com:22/org/repo.git", "https://github.com/org/repo"),
        ("https://git.example.com:8443/group/sub/repo.git", "https://git.example.com:8443/group/sub/repo"),
        ("http://127.0.0.1:3000/org/repo", "http://127.0.0.1:3000/org/repo"),
        ("/srv/git/repo.git", None),
        ("file:///srv/git/repo.git", None),
        ("../other", None),
        ("https://github.com/org/repo?x=<script>#y", "https://github.com/org/repo"),
    ],
)
def test_web_url_is_what_a_browser_opens_or_nothing(remote: str, expected: str | None) -> None:
    """What org.opencontainers.image.source of a pushed result holds."""
    assert web_url(remote) == expected


def test_not_a_repository(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    info = git_info(tmp_path / "plain")
    assert info == GitInfo(in_repo=False, root=(tmp_path / "plain").resolve())
    assert info.to_json()["commit"] is None


def test_unborn_branch(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.py": "a\n"}, commit=False)
    info = git_info(repo)
    assert (info.commit, info.branch, info.dirty_paths) == (None, "main", ("a.py",))


# -- the snapshot ref ----------------------------------------------------------------------------------------


@pytest.fixture
def dirty_repo(tmp_path: Path) -> Path:
    repo = make_repo(
        tmp_path / "repo",
        {
            ".gitignore": "*.ckpt\n",
            "src/train/.amlignore": "*.ipynb\n",
            "src/train/train.py": "lr = 0.1\n",
            "src/prep/prep.py": "p\n",
            "README.md": "r\n",
        },
    )
    write_files(
        repo,
        {
            "src/train/train.py": "lr = 0.2\n",  # modified
            "src/train/helpers.py": "h\n",  # untracked, kept
            "src/train/scratch.ipynb": "{}",  # .amlignored
            "model.ckpt": "weights",  # git-ignored
            ".mlpipe/runs/r.json": "{}",
        },
    )
    (repo / "src/prep/link").symlink_to("prep.py")  # untracked symlink
    return repo


def test_snapshot_ref_recovers_the_code_that_ran(dirty_repo: Path, tmp_path: Path) -> None:
    repo = dirty_repo
    head = git(repo, "rev-parse", "HEAD").strip()
    snapshotter = Snapshotter(repo)
    steps = {code: snapshotter.snapshot(repo / code) for code in ["src/train", "src/prep", "."]}
    ref = write_snapshot_ref(repo, "20260101-abc", snapshotter)

    assert ref.ref == "refs/mlpipe/runs/20260101-abc"
    assert git(repo, "rev-parse", ref.ref).strip() == ref.commit
    assert git(repo, "rev-parse", f"{ref.ref}^").strip() == head
    assert git(repo, "log", "-1", "--format=%an <%ae>|%cn <%ce>|%s", ref.ref).strip() == (
        "mlpipe <mlpipe@localhost>|mlpipe <mlpipe@localhost>|mlpipe run 20260101-abc"
    )
    for code, snapshot in steps.items():
        spec = f"{ref.ref}:" if code == "." else f"{ref.ref}:{code}"
        assert git(repo, "rev-parse", spec).strip() == snapshot.tree
    assert ref.unrecoverable == ()
    git(repo, "fsck", "--strict", "--no-dangling")

    # a checkout of the ref gives back the files that ran, and nothing else
    checkout = tmp_path / "checkout"
    git(repo, "worktree", "add", "-q", "--detach", str(checkout), ref.ref)
    files = sorted(
        str(p.relative_to(checkout)) for p in checkout.rglob("*") if p.name != ".git" and not p.is_dir()
    )
    assert files == [".gitignore", "README.md", "src/prep/link", "src/prep/prep.py", "src/train/.amlignore",
                     "src/train/helpers.py", "src/train/train.py"]  # fmt: skip
    assert (checkout / "src/train/train.py").read_text() == "lr = 0.2\n"
    assert (checkout / "src/prep/link").readlink() == Path("prep.py")


def test_big_files_are_listed_as_unrecoverable(dirty_repo: Path) -> None:
    repo = dirty_repo
    big = b"x" * 5000
    write_files(repo, {"src/train/data.bin": big})
    snapshotter = Snapshotter(repo)
    ref = write_snapshot_ref(repo, "big", snapshotter, max_file_size=1000)
    assert ref.unrecoverable == (
        {
            "path": "src/train/data.bin",
            "size": 5000,
            "sha256": hashlib.sha256(big).hexdigest(),
            "reason": "over the size limit",
        },
    )
    names = git(repo, "ls-tree", "-r", "--name-only", "-z", ref.ref).split("\0")
    assert "src/train/data.bin" not in names and "src/train/train.py" in names
    # the step's tree differs exactly by the left-out file
    assert (
        git(repo, "rev-parse", f"{ref.ref}:src/train").strip()
        != snapshotter.snapshot(repo / "src/train").tree
    )
    assert "src/train/data.bin" in git(repo, "log", "-1", "--format=%B", ref.ref)
    git(repo, "fsck", "--strict", "--no-dangling")


def test_second_write_adds_only_the_commit(dirty_repo: Path) -> None:
    repo = dirty_repo
    write_snapshot_ref(repo, "first", Snapshotter(repo))
    before = loose_objects(repo)
    second = write_snapshot_ref(repo, "second", Snapshotter(repo))
    assert loose_objects(repo) == before + 1
    assert git(repo, "cat-file", "-t", second.commit).strip() == "commit"


def test_objects_git_already_has_are_not_written(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"src/a.py": "a\n", "src/b.py": "b\n"})
    git(repo, "gc", "-q")  # everything packed: no loose objects
    write_files(repo, {"new.py": "n\n"})
    write_snapshot_ref(repo, "r1", Snapshotter(repo))
    # one blob (new.py), the root tree, the commit: src/ is an unchanged tree already in the pack
    assert loose_objects(repo) == 3


def test_unborn_branch_commit_has_no_parent(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.py": "a\n"}, commit=False)
    ref = write_snapshot_ref(repo, "r0", Snapshotter(repo))
    assert git(repo, "rev-list", "--parents", "-1", ref.ref).split() == [ref.commit]
    assert git(repo, "rev-parse", f"{ref.ref}:a.py").strip() == git(repo, "hash-object", "a.py").strip()


def test_bad_run_id_is_refused(dirty_repo: Path) -> None:
    from mlpipe.errors import GitError

    with pytest.raises(GitError, match="cannot name a git ref"):
        write_snapshot_ref(dirty_repo, "../../HEAD", Snapshotter(dirty_repo))
    assert git(dirty_repo, "for-each-ref", "refs/mlpipe") == ""
