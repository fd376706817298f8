"""The Python a step runs with, for `environment: {python: true, packages: true}`.

Steps run `python` from the caller's PATH (as in an activated virtual environment), which need not be the
interpreter mlpipe itself runs on; so that interpreter is asked, once per process.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
from typing import Any

from mlpipe.digest import bytes_sha256, canonical_json

PYTHON_KEY = "<python>"
PACKAGES_KEY = "<python packages>"
"""Keys in a step's environment digests; '<' keeps them apart from workspace file paths."""

_PROBE = (
    "import json, platform, sys, importlib.metadata as m\n"
    "dists = sorted({f'{d.metadata[\"Name\"]}=={d.version}'.lower() for d in m.distributions() if d.metadata['Name']})\n"
    "print(json.dumps({'version': f'{platform.python_implementation()} {platform.python_version()}', "
    "'packages': dists}))\n"
)


def environment_facts(*, python: bool, packages: bool) -> dict[str, str]:
    """What the step's `environment:` flags put into its fingerprint."""
    if not (python or packages):
        return {}
    found = _probe()  # the caller's PATH decides which python: read once per process
    out: dict[str, str] = {}
    if python:
        out[PYTHON_KEY] = found["version"]
    if packages:
        out[PACKAGES_KEY] = "sha256:" + bytes_sha256(canonical_json(found["packages"]))
    return out


@functools.cache
def _probe() -> dict[str, Any]:
    python = shutil.which("python") or shutil.which("python3")
    if python is None:
        return {"version": "none", "packages": "none"}
    # cwd "/": no module in the workspace can shadow the probe's imports.
    result = subprocess.run(
        [python, "-c", _PROBE], cwd="/", capture_output=True, text=True, check=False, timeout=60
    )
    if result.returncode != 0:
        return {"version": f"unknown ({python} exited {result.returncode})", "packages": "unknown"}
    data: dict[str, Any] = json.loads(result.stdout)
    return data
