"""`mlpipe verify TAG`: every artifact a release manifest names is stored and matches its digest (no rerun)."""

from __future__ import annotations

import json

import click

from mlpipe.cli.options import cli_settings, file_option, json_option
from mlpipe.digest import FileHasher
from mlpipe.release.manifest import NotVerified, load_release, verify
from mlpipe.run.session import remote_of, store_of, workspace_for
from mlpipe.text import table

VERIFY_FORMAT = "mlpipe.verify/1"


@click.command("verify")
@click.argument("tag")
@file_option
@click.option(
    "--cache",
    default=None,
    metavar="DIR|oci://HOST/REPO",
    help="Result store to check, or a registry behind the local one (default: $MLPIPE_CACHE, else .mlpipe/cache).",
)
@json_option
def command(tag: str, file: str | None, cache: str | None, as_json: bool) -> None:
    """Check that every output the release manifest of TAG names is present and matches its digest.

    Exits 0 when all do, 1 when one is missing or differs."""
    settings = cli_settings(cache)
    workspace = workspace_for(file, settings)
    manifest = load_release(workspace, tag, registry=remote_of(settings))
    # With a registry behind the local store, what is not stored here is fetched (and digest-checked) from it.
    store = store_of(workspace, settings, FileHasher())
    findings = verify(manifest, store)
    ok = all(f.ok for f in findings)
    if as_json:
        rows = [{"step": f.step, "output": f.output, "ok": f.ok, "message": f.message} for f in findings]
        data = {"format": VERIFY_FORMAT, "tag": tag, "run_id": manifest["run_id"], "ok": ok, "outputs": rows}
        click.echo(json.dumps(data, indent=1))
    else:
        head = f"release {tag}: run {manifest['run_id']} at {str(manifest.get('commit'))[:12]}"
        rows_text = [[f.step, f.output, "ok" if f.ok else "FAILED", f.message] for f in findings]
        click.echo(head + "\n" + table(["step", "output", "result", "detail"], rows_text))
        if ok:
            click.echo(f"verified: all {len(findings)} output(s) match")
    if not ok:
        raise NotVerified(tag, [f"{f.step}.{f.output}" for f in findings if not f.ok])
