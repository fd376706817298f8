"""A blob large enough to be hashed on a thread of its own as it streams in is checked as any other."""

from __future__ import annotations

import hashlib
import io
import uuid

import pytest

from mlpipe.cache import registry as registry_module
from mlpipe.cache.registry import BlobCorrupt, RegistryClient


def test_a_large_blob_is_hashed_apart_and_a_corrupt_one_refused(registry) -> None:
    data = bytes(range(256)) * (
        registry_module._HASH_APART // 256 + 4099
    )  # over the threshold, not 256 KiB-aligned
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    repo = f"large/{uuid.uuid4().hex[:8]}"
    client = RegistryClient(registry.host)
    client.upload_bytes(repo, digest, data)
    out = io.BytesIO()
    assert client.download_blob(repo, digest, out, max_size=len(data)) == len(data)
    assert out.getvalue() == data
    stored = registry.blob_path(digest)
    stored.write_bytes(data[:-1] + b"x")  # the same size, its last byte changed
    try:
        with pytest.raises(BlobCorrupt, match="does not match its digest"):
            client.download_blob(repo, digest, io.BytesIO(), max_size=len(data))
    finally:
        stored.write_bytes(data)
