"""What the result store has to say (a registry given up, an entry refused) reaches the sink it was made with,
as `Notice` events, in process: nothing of it is printed by the store itself. The CLI's text of the same
warnings is checked by tests/faults/test_registry_faults.py and test_hostile_registry.py."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from mlpipe.cache.local import LocalStore
from mlpipe.cache.oci import result_tag
from mlpipe.cache.registry import RegistryClient
from mlpipe.cache.tiered import RemoteSettings, TieredStore
from mlpipe.cache.trust import RunContext
from mlpipe.events import Notice
from services.registry import Registry, free_port

FINGERPRINT = hashlib.sha256(b"a step's fingerprint").hexdigest()


def store(tmp_path: Path, host: str, heard: list[Notice]) -> TieredStore:
    return TieredStore(
        LocalStore(tmp_path / "cache", sink=heard.append),
        settings=RemoteSettings(host=host, repo="events", retry_budget_s=0.0),
        workspace_root=tmp_path,
        run_context=lambda: RunContext(event="local", ref=None),
        sink=heard.append,
    )


def test_a_registry_given_up_is_one_warning_event(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    heard: list[Notice] = []
    tiered = store(tmp_path, f"127.0.0.1:{free_port()}", heard)  # nothing listens there

    assert tiered.lookup(FINGERPRINT) is None
    assert tiered.lookup(FINGERPRINT) is None  # given up: said once

    assert [n.kind for n in heard] == ["warning"]
    assert heard[0].text.startswith(f"looking up {FINGERPRINT[:12]} in 127.0.0.1:")
    assert heard[0].text.endswith("; going on without the registry " + tiered.settings.url)
    assert heard[0].line == f"mlpipe: warning: {heard[0].text}"
    assert capfd.readouterr().err == ""


def test_a_refused_entry_is_one_warning_event(
    tmp_path: Path, registry: Registry, capfd: pytest.CaptureFixture[str]
) -> None:
    client = RegistryClient(registry.host, insecure=True)
    config = b"{}"
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    client.upload_bytes("events", config_digest, config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example.not-mlpipe",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config_digest, "size": 2},
        "layers": [],
    }
    tag = result_tag(FINGERPRINT)
    client.put_manifest("events", tag, json.dumps(manifest).encode())
    heard: list[Notice] = []
    tiered = store(tmp_path, registry.host, heard)

    assert tiered.lookup(FINGERPRINT) is None
    assert tiered.lookup(FINGERPRINT) is None  # refused once in this run: not fetched, nor said, again

    assert heard == [
        Notice(
            kind="warning",
            text=f"ignoring registry entry events:result-{FINGERPRINT[:12]}…: events:{tag} is not an mlpipe result",
        )
    ]
    assert capfd.readouterr().err == ""


def test_a_relay_hands_notices_to_its_fallback_until_a_receiver_is_attached() -> None:
    from mlpipe.events import Relay, message, warning

    early, late = [], []
    relay = Relay(early.append)
    relay(message("waiting for the store"))
    relay.attach(late.append)
    relay(warning("a registry given up"))
    assert (early, late) == ([message("waiting for the store")], [warning("a registry given up")])


def test_the_run_hears_its_store_through_its_reporters(project_factory) -> None:
    """Opened through the API, a run's store speaks to the run's reporters once the run starts."""
    import io

    from mlpipe.api.ci_run import CiRunOptions, ci_run
    from mlpipe.api.source import Source
    from mlpipe.report.terminal import PlainReporter

    project = project_factory(
        {
            "mlpipe.yaml": "name: d\nsteps:\n  a:\n    run: echo > ${{ outputs.o }}\n    outputs: {o: {type: file}}\n"
        }
    )
    source = Source(file=str(project.root / "mlpipe.yaml"))
    first = ci_run(source, CiRunOptions(), stream=io.StringIO())
    entry = project.root / ".mlpipe/cache/results" / first.record.steps["a"].fingerprint[:2]
    (entry / f"{first.record.steps['a'].fingerprint}.json").write_text("{not json")

    class Listening(PlainReporter):
        heard: list[Notice] = []

        def notice(self, notice: Notice) -> None:
            self.heard.append(notice)

    before: list[Notice] = []
    reporter = Listening(io.StringIO())
    result = ci_run(source, CiRunOptions(), stream=io.StringIO(), reporter=reporter, notices=before.append)
    assert result.failure is None and result.record.steps["a"].status == "ran"
    # The plan looked the entry up before the run (the fallback heard it); the runner again (the reporter did).
    for heard in (before, reporter.heard):
        assert heard and all(n.kind == "warning" for n in heard)
        assert all(n.text.startswith(f"ignoring corrupt cache entry {entry}") for n in heard)
