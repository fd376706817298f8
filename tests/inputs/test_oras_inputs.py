"""Artifacts other tools pushed, as `oci://HOST/REPO@sha256:...` inputs: oras-py's client pushes files and a
directory to the real registry and a step reads them by name; a directory layer laid out as oras-go writes it
is read too; a directory layer that is not a plain tree under its title fails its step with a clear error."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from mlpipe.cache.registry import RegistryClient

READ = 'cat "$M/weights.txt" "$M/data/sub/vocab.txt" "$M/data/top.txt" > ${{ outputs.o }}; ls -l "$M/data" >> ${{ outputs.o }}'


def pipeline(ref: str, run: str = READ) -> str:
    return f"""\
name: demo
steps:
  use:
    code: src
    run: M=${{{{ inputs.model }}}}; {run}
    inputs:
      model: {ref}
    outputs:
      o: {{type: file, path: o.txt}}
"""


def oras_push(registry, ref: str, paths: list[str], cwd: Path, monkeypatch) -> str:
    """`oras push` with oras-py's client; returns the manifest digest."""
    import oras.client

    monkeypatch.chdir(cwd)  # oras-py pushes paths relative to the working directory
    client = oras.client.OrasClient(hostname=registry.host, insecure=True)
    client.push(target=f"{registry.host}/{ref}", files=paths)
    repo, _, tag = ref.partition(":")
    got = RegistryClient(registry.host).get_manifest(repo, tag)
    assert got is not None
    return got[1]


def test_files_and_a_directory_pushed_with_oras_are_read_by_name(
    project_factory, registry, tmp_path, monkeypatch
):
    src = tmp_path / "src"
    (src / "data/sub").mkdir(parents=True)
    (src / "weights.txt").write_text("w=1\n")
    (src / "data/top.txt").write_text("top\n")
    (src / "data/sub/vocab.txt").write_text("a\nb\n")
    (src / "data/run.sh").write_text("#!/bin/sh\n")
    (src / "data/run.sh").chmod(0o755)
    (src / "data/link.txt").symlink_to("top.txt")
    digest = oras_push(registry, "t/oras-model:v1", ["weights.txt", "data"], src, monkeypatch)
    manifest = json.loads(RegistryClient(registry.host).get_manifest("t/oras-model", digest)[0])
    assert [layer["mediaType"] for layer in manifest["layers"]] == [
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",  # oras-py's directory: a gzip'd tar, no annotation
    ]

    project = project_factory(
        {"src/.keep": "", "mlpipe.yaml": pipeline(f"oci://{registry.host}/t/oras-model@{digest}")}
    )
    project.run("ci-run").assert_success()

    out = (project.root / "o.txt").read_text()
    assert out.startswith("w=1\na\nb\ntop\n")
    assert "link.txt -> top.txt" in out
    assert "-r-xr-xr-x" in out.split("run.sh")[0].splitlines()[-1]


def tgz(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return gzip.compress(buffer.getvalue())


def info(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    made = tarfile.TarInfo(name)
    made.type, made.linkname = kind, linkname
    return made


def push_layers(registry, repo: str, layers: list[tuple[str, bytes, dict[str, str]]]) -> str:
    """An artifact of these (media type, blob, annotations) layers; returns its manifest digest."""
    client = RegistryClient(registry.host)
    client.upload_bytes(repo, "sha256:" + hashlib.sha256(b"{}").hexdigest(), b"{}")
    descriptors = []
    for media, data, notes in layers:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        client.upload_bytes(repo, digest, data)
        descriptors.append({"mediaType": media, "digest": digest, "size": len(data), "annotations": notes})
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.empty.v1+json",
            "digest": "sha256:" + hashlib.sha256(b"{}").hexdigest(),
            "size": 2,
        },
        "layers": descriptors,
    }
    data = json.dumps(manifest).encode()
    client.put_manifest(repo, "v1", data)
    return "sha256:" + hashlib.sha256(data).hexdigest()


def oras_go_dir(
    title: str, members: list[tuple[tarfile.TarInfo, bytes]]
) -> tuple[str, bytes, dict[str, str]]:
    """A directory layer as oras-go writes one: members under the title, the unpack annotation."""
    data = tgz(members)
    tar = gzip.decompress(data)
    return (
        "application/vnd.oci.image.layer.v1.tar+gzip",
        data,
        {
            "org.opencontainers.image.title": title,
            "io.deis.oras.content.unpack": "true",
            "io.deis.oras.content.digest": "sha256:" + hashlib.sha256(tar).hexdigest(),
        },
    )


def test_a_nested_directory_layer_as_oras_go_writes_it_is_read(project_factory, registry):
    layer = oras_go_dir(
        "data",
        [
            (info("data/", tarfile.DIRTYPE), b""),
            (info("data/top.txt"), b"top\n"),
            (info("data/sub/vocab.txt"), b"v\n"),
        ],
    )
    weights = (
        "application/vnd.oci.image.layer.v1.tar",
        b"w\n",
        {"org.opencontainers.image.title": "weights.txt"},
    )
    digest = push_layers(registry, "t/go-dir", [layer, weights])
    project = project_factory(
        {"src/.keep": "", "mlpipe.yaml": pipeline(f"oci://{registry.host}/t/go-dir@{digest}")}
    )

    project.run("ci-run").assert_success()

    assert (project.root / "o.txt").read_text().startswith("w\nv\ntop\n")


@pytest.mark.parametrize(
    ("members", "problem"),
    [
        ([(info("data/../../evil"), b"x")], "member 'data/../../evil' is not under 'data'"),
        ([(info("/etc/evil"), b"x")], "member '/etc/evil' is not under 'data'"),
        ([(info("other/x"), b"x")], "member 'other/x' is not under 'data'"),
        ([(info("data/h", tarfile.LNKTYPE, "/etc/passwd"), b"")], "'data/h' is a hard link"),
        ([(info("data/f", tarfile.FIFOTYPE), b"")], "'data/f' is a device or pipe"),
        ([(info("data/l", tarfile.SYMTYPE, "../../etc/passwd"), b"")], "'data/l'"),
        ([(info("data"), b"file")], "holds a file at its own title"),
    ],
)
def test_a_directory_layer_that_is_not_a_plain_tree_under_its_title_fails_its_step(
    project_factory, registry, members, problem
):
    digest = push_layers(registry, "t/hostile-dir", [oras_go_dir("data", members)])
    ref = f"oci://{registry.host}/t/hostile-dir@{digest}"
    project = project_factory({"src/.keep": "", "mlpipe.yaml": pipeline(ref, "true > ${{ outputs.o }}")})

    out = project.run("ci-run").assert_code(1).output

    assert f"use: failed: input 'model': {ref}: " in out
    assert problem in out
    assert "Traceback" not in out


def test_a_directory_layer_that_is_not_a_gzip_tar_fails_its_step(project_factory, registry):
    bad = (
        "application/vnd.oci.image.layer.v1.tar+gzip",
        b"not gzip",
        {"org.opencontainers.image.title": "data"},
    )
    digest = push_layers(registry, "t/not-gzip", [bad])
    ref = f"oci://{registry.host}/t/not-gzip@{digest}"
    project = project_factory({"src/.keep": "", "mlpipe.yaml": pipeline(ref, "true > ${{ outputs.o }}")})

    out = project.run("ci-run").assert_code(1).output

    assert f"input 'model': {ref}: directory layer 'data' is not a gzip'd tar" in out


def test_data_import_records_an_oras_artifact_as_a_data_set(project_factory, registry, tmp_path, monkeypatch):
    src = tmp_path / "src"
    (src / "images/cats").mkdir(parents=True)
    (src / "labels.csv").write_text("cat,1\n")
    (src / "images/cats/1.txt").write_text("meow\n")
    digest = oras_push(registry, "t/oras-data:v1", ["labels.csv", "images"], src, monkeypatch)
    ref = f"oci://{registry.host}/t/oras-data@{digest}"
    project = project_factory(
        {
            "src/.keep": "",
            "mlpipe.yaml": pipeline(
                "data/set.mlpipe-data.json", 'cat "$M/labels.csv" "$M/images/cats/1.txt" > ${{ outputs.o }}'
            ),
        }
    )

    out = project.run("data", "import", ref, "data/set").assert_success().output
    record = json.loads((project.root / "data/set.mlpipe-data.json").read_text())
    ran = project.run("ci-run", "--json").assert_success().json()

    assert out.startswith(f"set.mlpipe-data.json: {record['digest']} (2 files, ")
    assert (record["path"], record["type"], record["files"]) == ("set", "dir", 2)
    assert (project.root / "data/set/images/cats/1.txt").read_text() == "meow\n"
    assert (project.root / "data/.gitignore").read_text() == "/set\n"
    assert (project.root / "o.txt").read_text() == "cat,1\nmeow\n"
    assert ran["steps"]["use"]["parts"]["inputs"] == {"model": record["digest"]}
    # The data set is in the store: a workspace without the files gets them back without the registry.
    registry_less = project.run("data", "pull", "data/set", env={"MLPIPE_CACHE": ""})
    assert registry_less.assert_success()


def test_data_import_refuses_a_tag_and_an_existing_path(project_factory, registry):
    project = project_factory({"data/set/x": "x"})

    by_tag = project.run("data", "import", f"oci://{registry.host}/t/x:v1", "data/new").assert_code(2).output
    exists = project.run(
        "data", "import", f"oci://{registry.host}/t/x@sha256:{'0' * 64}", "data/set"
    ).assert_code(2)

    assert f"'oci://{registry.host}/t/x:v1' is not an OCI artifact by digest" in by_tag
    assert f"{project.root}/data/set exists; give a path that does not" in exists.output
