"""One benchmark step: a small JSON that depends on this step's code, its input JSONs and (s01) the data.

python3 step.py --out OUT.json [--data DIR] [INPUT.json ...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

HERE = Path(__file__).resolve().parent


def code_digest() -> str:
    h = hashlib.sha256()
    for path in sorted(HERE.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def data_digest(top: str) -> dict[str, object]:
    """Reads every file under `top` completely."""
    h = hashlib.sha256()
    count = size = 0
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            with open(path, "rb", buffering=0) as f:
                digest = hashlib.file_digest(f, "sha256").hexdigest()
            h.update(f"{os.path.relpath(path, top)}\0{digest}\n".encode())
            count += 1
            size += os.path.getsize(path)
    return {"files": count, "bytes": size, "sha256": h.hexdigest()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--data")
    parser.add_argument("inputs", nargs="*")
    args = parser.parse_args()
    result: dict[str, object] = {"code": code_digest()}
    result["inputs"] = [json.loads(Path(p).read_text())["digest"] for p in args.inputs]
    if args.data:
        result["data"] = data_digest(args.data)
    result["digest"] = hashlib.sha256(json.dumps(result, sort_keys=True).encode()).hexdigest()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
