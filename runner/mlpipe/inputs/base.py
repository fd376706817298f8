"""What every input fetcher shares, in a module of its own so the fetchers and the resolver that dispatches
to them do not import each other: the one error they raise, and how they reach a registry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from typing import TYPE_CHECKING

from mlpipe.errors import MlpipeError
from mlpipe.events import Sink, to_stderr, warning
from mlpipe.frozen import frozen

if TYPE_CHECKING:
    from mlpipe.cache.registry import RegistryClient


class InputUnavailable(MlpipeError):
    """An input could not be fetched (a URL, a data set): the step that reads it fails, the others go on."""


@frozen(kw_only=True, eq=False, repr=False)
class RegistryAccess:
    """How to reach the registry an `oci://` input names: the command's `--plain-http`, the environment its
    credentials and trusted certificate authorities are looked up in (the command's `Settings.environ`; never
    printed), and the sink that hears a registry given up."""

    plain_http: bool | None = None
    environ: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    sink: Sink = field(default=to_stderr, repr=False, compare=False)

    def client(self, host: str, repo: str = "") -> RegistryClient:
        from mlpipe.cache.logins import find_credentials
        from mlpipe.cache.registry import RegistryClient  # requests only when one is used

        sink = self.sink
        return RegistryClient(
            host,
            credentials=find_credentials(host, self.environ, repo=repo),
            plain_http=self.plain_http,
            environ=self.environ,
            warn=lambda text: sink(warning(text)),
        )
