"""The data files committed beside the pipeline: `data/raw.mlpipe-data.json` records the content of a data set
kept out of git (inputs/datasets.py adds, checks and restores the data; the pipeline file refers to it).

Their format is part of the pipeline's, so it lives here: the pipeline loader reads a data input's record
without importing any input fetcher.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlpipe.digest import is_digest
from mlpipe.frozen import frozen

FORMAT = "mlpipe.data/1"
DATA_SUFFIX = ".mlpipe-data.json"


@frozen(kw_only=True)
class DataRecord:
    path: str
    """The data's name, relative to the data file's directory."""
    digest: str
    type: str
    size: int
    files: int

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "path": self.path,
            "digest": self.digest,
            "type": self.type,
            "size": self.size,
            "files": self.files,
        }


def record_path(data: Path) -> Path:
    return data.parent / (data.name + DATA_SUFFIX)


TYPES = ("", "file", "dir")
MAX_RECORD_BYTES = 64 << 10
"""A data file holds a few short fields; mlpipe writes about 200 bytes."""


def data_path(record_file: Path) -> Path:
    return record_file.parent / record_file.name.removesuffix(DATA_SUFFIX)


def read_record(path: Path) -> DataRecord:
    """Raises FileNotFoundError, or ValueError naming what is wrong (a file it cannot read, too large, not
    JSON). A record is committed with the pipeline, so it is read as hostile: bounded, never a traceback."""
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_RECORD_BYTES + 1)
    except FileNotFoundError:
        raise
    except OSError as error:
        raise ValueError(f"cannot read it: {error.strerror}") from None
    if len(raw) > MAX_RECORD_BYTES:
        raise ValueError(f"larger than {MAX_RECORD_BYTES >> 10} KiB, which no data file written by mlpipe is")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"invalid JSON: {error.msg}") from None
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    except RecursionError:
        raise ValueError("invalid JSON: nested too deep") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else None
        raise ValueError(f"expected format {FORMAT!r}, found {found!r}")
    path_ok = isinstance(data.get("path"), str) and data["path"] and "/" not in data["path"]
    digest = data.get("digest")
    if not path_ok or not is_digest(digest):
        raise ValueError("expected 'path' (a name) and 'digest' (sha256: and 64 lowercase hex digits)")
    counts = [data.get("size", 0), data.get("files", 0)]
    if not all(type(n) is int and 0 <= n < 2**63 for n in counts) or data.get("type", "") not in TYPES:
        raise ValueError("expected 'size' and 'files' (whole numbers) and 'type' (file or dir)")
    return DataRecord(
        path=data["path"],
        digest=str(digest),
        type=str(data.get("type", "")),
        size=counts[0],
        files=counts[1],
    )
