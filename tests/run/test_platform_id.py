"""The platform in every fingerprint is what `platform.machine()` says, read without importing `platform`."""

from __future__ import annotations

import platform
import sys

from mlpipe.run.prepare import platform_id


def test_the_platform_id_is_sys_platform_and_platform_machine() -> None:
    assert platform_id() == f"{sys.platform}-{platform.machine().lower()}"
