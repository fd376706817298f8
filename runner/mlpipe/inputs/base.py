"""The one error every input fetcher raises, in a module of its own so the fetchers and the resolver that
dispatches to them do not import each other."""

from __future__ import annotations

from mlpipe.errors import MlpipeError


class InputUnavailable(MlpipeError):
    """An input could not be fetched (a URL, a data set): the step that reads it fails, the others go on."""
