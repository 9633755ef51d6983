"""HTTPS without a proxy: the server serves TLS with the certificate and key it is given, and
the client (which trusts what SSL_CERT_FILE names, as httpx does) talks to it."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from flux.client import FluxClient

from tests.support.cluster import clean_env, free_port, stop_process
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_the_server_serves_https_with_the_given_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = _self_signed(tmp_path)
    port = free_port()
    argv = [
        sys.executable, "-m", "flux_server", "--host", "127.0.0.1", "--port", str(port),
        "--database-url", f"sqlite:///{tmp_path / 'flux.db'}",
        "--tls-certfile", str(cert), "--tls-keyfile", str(key),
    ]  # fmt: skip
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        argv, env=clean_env(FLUX_HOME=str(tmp_path / "home")), stdout=log, stderr=log
    )
    url = f"https://127.0.0.1:{port}"
    try:

        def answers() -> bool:
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            try:
                trusted = ssl.create_default_context(cafile=str(cert))
                return httpx.get(f"{url}/health", verify=trusted, timeout=2).is_success
            except httpx.TransportError:
                return False

        wait_until(answers, what="the server over HTTPS")
        with pytest.raises(httpx.TransportError):  # plain HTTP on that port: no answer
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        with FluxClient(url) as client:
            assert client.health().database == "sqlite"
            assert client.list_workflows() == []
    finally:
        stop_process(server)
        log.close()


def test_half_a_tls_configuration_is_refused_in_one_line(tmp_path: Path) -> None:
    argv = [
        sys.executable, "-m", "flux_server", "--port", str(free_port()),
        "--database-url", f"sqlite:///{tmp_path / 'flux.db'}", "--tls-certfile", "cert.pem",
    ]  # fmt: skip
    done = subprocess.run(argv, env=clean_env(FLUX_HOME=str(tmp_path)), capture_output=True)
    assert done.returncode == 2
    assert done.stderr.decode().strip().splitlines() == [
        "flux-server: server.tls_keyfile is missing: HTTPS needs a certificate and its key"
    ]
