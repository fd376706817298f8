"""What every input fetcher shares, in a module of its own so the fetchers and the resolver that dispatches
to them do not import each other: the one error they raise, and how they reach a registry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mlpipe.errors import MlpipeError
from mlpipe.events import Sink, to_stderr, warning

if TYPE_CHECKING:
    from mlpipe.cache.registry import RegistryClient


class InputUnavailable(MlpipeError):
    """An input could not be fetched (a URL, a data set): the step that reads it fails, the others go on."""


@dataclass(frozen=True, kw_only=True)
class RegistryAccess:
    """How to reach the registry an `oci://` input names: the command's `--insecure`, and the environment its
    credentials are looked up in (the command's `Settings.environ`; never printed), and the sink that hears a
    registry given up."""

    insecure: bool = False
    environ: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    sink: Sink = field(default=to_stderr, repr=False, compare=False)

    def client(self, host: str) -> RegistryClient:
        from mlpipe.cache.registry import RegistryClient, find_credentials  # requests only when one is used

        credentials = find_credentials(host, self.environ)
        sink = self.sink
        return RegistryClient(
            host, credentials=credentials, insecure=self.insecure, warn=lambda text: sink(warning(text))
        )
