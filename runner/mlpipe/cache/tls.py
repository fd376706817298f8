"""Which certificate authorities a registry's TLS certificate is checked against, and what a failed check means.

By default the system's certificate store, through truststore (the one pip uses): on Linux the distribution's
bundle (`update-ca-certificates` adds a company CA there), on macOS the Keychain, on Windows the certificate
store, so a private registry behind a company CA works wherever docker and podman work. requests alone trusts
only certifi's copy of Mozilla's list. A bundle named by REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE (as requests and
curl read them), or SSL_CERT_FILE / SSL_CERT_DIR (as OpenSSL reads them) is trusted instead, exactly as those
tools do.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from mlpipe.errors import CacheError
from mlpipe.frozen import frozen

CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")
SYSTEM_STORE = "the system's certificate store"


class RegistryUntrusted(CacheError):
    """The registry's TLS certificate failed its check, or it does not speak TLS: retrying cannot help."""


@frozen
class Trust:
    bundle: str | None = None
    """A PEM file or a hashed certificate directory to trust instead of the system's store."""
    source: str = SYSTEM_STORE
    """Where the trusted authorities come from, for messages."""


def trust_from(environ: Mapping[str, str]) -> Trust:
    """The authorities to trust, from the first of CA_VARIABLES that is set; else the system's store."""
    for name in CA_VARIABLES:
        value = environ.get(name)
        if value:
            if not Path(value).exists():
                raise CacheError(
                    f"{name}={value}: no such file or directory; name a PEM file of the certificate "
                    f"authorities to trust, or unset {name} to trust {SYSTEM_STORE}"
                )
            return Trust(bundle=value, source=f"{name}={value}")
    return Trust()


class _SystemStore(HTTPAdapter):
    """HTTPS through an SSLContext that verifies against the system's store (as pip mounts truststore)."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)

    def proxy_manager_for(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["ssl_context"] = self._context
        return super().proxy_manager_for(*args, **kwargs)


def new_session(trust: Trust) -> requests.Session:
    """A requests session that checks registries' certificates against `trust`."""
    session = requests.Session()
    if trust.bundle is not None:
        session.verify = trust.bundle
    else:
        import truststore

        session.mount("https://", _SystemStore(truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)))
    return session


def untrusted(error: requests.exceptions.SSLError, host: str, trust: Trust) -> RegistryUntrusted | None:
    """What a TLS failure means when retrying cannot help (a certificate the trusted authorities did not sign, a
    registry that answers HTTPS with plain HTTP); None for a handshake that may just have been cut off."""
    text = str(error)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        reason = text.split("certificate verify failed:", 1)[-1].split(" (_ssl")[0].strip(" ')\"")
        return RegistryUntrusted(
            f"registry {host}: its TLS certificate is not trusted ({reason or 'verify failed'}; checked "
            f"against {trust.source}); add the certificate authority that signed it to the system's store, or "
            "name a PEM file holding it in REQUESTS_CA_BUNDLE or SSL_CERT_FILE"
        )
    if "WRONG_VERSION_NUMBER" in text or "wrong version number" in text or "record layer failure" in text:
        return RegistryUntrusted(
            f"registry {host} does not speak TLS (it answered HTTPS with something else); for a registry "
            "that serves plain HTTP, use --plain-http"
        )
    return None
