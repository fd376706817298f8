"""TLS to a registry behind a private CA (a real registry serving HTTPS on 127.0.0.1 with a certificate that
openssl signed): the system's store is trusted (through truststore, not certifi's copy), a bundle named by
REQUESTS_CA_BUNDLE or SSL_CERT_FILE instead, and an untrusted certificate or a plain-HTTP registry is one clear
message, not a retried outage. `--no-plain-http` makes a loopback host speak HTTPS; `--insecure` is the
deprecated name of `--plain-http`.
"""

from __future__ import annotations

import uuid

import pytest
import requests
from test_registry_auth import FILES, cache_env, push_then_reuse

from mlpipe.cache.registry import RegistryClient
from mlpipe.cache.tls import RegistryUntrusted
from services.registry import Registry

CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")


@pytest.fixture(autouse=True)
def no_ambient_ca_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine's own CA variables stay out: each test names the ones it means."""
    for name in CA_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def https_env(registry: Registry, repo: str, tmp, **extra: str) -> dict[str, str]:
    return cache_env(registry, repo, tmp, MLPIPE_PLAIN_HTTP="false", **extra)


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"])
def test_a_ca_bundle_variable_trusts_the_private_ca(project_factory, tls_registry, tmp_path, variable):
    assert tls_registry.tls is not None
    env = https_env(
        tls_registry, f"t/tls-{uuid.uuid4().hex[:8]}", tmp_path, **{variable: str(tls_registry.tls.cert)}
    )
    push_then_reuse(project_factory, env)


def test_an_untrusted_certificate_is_one_clear_message_not_an_outage(project_factory, tls_registry, tmp_path):
    env = https_env(tls_registry, "t/untrusted", tmp_path, MLPIPE_REGISTRY_RETRY_BUDGET_S="600")
    out = project_factory(FILES).run("ci-run", "--cache-required", env=env, timeout=60)
    out.assert_code(1)
    assert (
        f"registry {tls_registry.host}: its TLS certificate is not trusted (unable to get local issuer "
        "certificate; checked against the system's certificate store); add the certificate authority "
        "that signed it to the system's store, or name a PEM file holding it in REQUESTS_CA_BUNDLE or "
        "SSL_CERT_FILE"
    ) in out.stderr, out.stderr


def test_the_system_store_is_what_openssl_trusts_not_certifis_copy(tls_registry, monkeypatch):
    """truststore verifies against OpenSSL's default locations (where update-ca-certificates puts a company CA).
    Pointing OpenSSL's default at the private CA, without telling mlpipe (its environ is empty), is trusted;
    requests' own default (certifi) is not."""
    assert tls_registry.tls is not None
    client = RegistryClient(tls_registry.host, plain_http=False, environ={})
    with pytest.raises(RegistryUntrusted):
        list(client.tags("t/system-store"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_registry.tls.cert))  # OpenSSL's default file, as a system's
    client = RegistryClient(tls_registry.host, plain_http=False, environ={})
    assert list(client.tags("t/system-store")) == []
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{tls_registry.url}/v2/", timeout=10, verify=requests.certs.where())


def test_a_ca_variable_naming_no_file_says_which(tls_registry, tmp_path):
    client = RegistryClient(
        tls_registry.host, plain_http=False, environ={"REQUESTS_CA_BUNDLE": str(tmp_path / "missing.pem")}
    )
    with pytest.raises(Exception) as raised:
        list(client.tags("t/missing"))
    assert str(raised.value) == (
        f"REQUESTS_CA_BUNDLE={tmp_path / 'missing.pem'}: no such file or directory; name a PEM file of the "
        "certificate authorities to trust, or unset REQUESTS_CA_BUNDLE to trust the system's certificate store"
    )


def test_https_to_a_plain_http_registry_says_use_plain_http(registry):
    client = RegistryClient(registry.host, plain_http=False)
    with pytest.raises(RegistryUntrusted) as raised:
        list(client.tags("t/plain"))
    assert str(raised.value) == (
        f"registry {registry.host} does not speak TLS (it answered HTTPS with something else); for a registry "
        "that serves plain HTTP, use --plain-http"
    )


def test_insecure_is_the_deprecated_name_of_plain_http(project_factory, registry, tmp_path):
    env = cache_env(registry, f"t/insecure-{uuid.uuid4().hex[:8]}", tmp_path, MLPIPE_PLAIN_HTTP="false")
    p = project_factory(FILES)
    refused = p.run("ci-run", "--cache-required", env=env)
    refused.assert_code(1)
    assert "does not speak TLS" in refused.stderr
    out = p.run("ci-run", "--cache-required", "--insecure", env=env).assert_success()
    assert "mlpipe: --insecure is deprecated; it means --plain-http, use that" in out.stderr
    assert p.record()["options"]["cache"]["pushed"] == 1, out.output
