"""Browsers as attackers, against a real socket: what a web page can make the user's browser
send to a loopback server (authentication off) is refused, and only that."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.support.cluster import FluxCluster, make_cluster

pytestmark = pytest.mark.e2e

CONSOLE = "http://console.example"
FLOW = b"from flux import workflow\n\n@workflow\nasync def hello(ctx):\n    return 1\n"


@pytest.fixture(scope="module")
def loopback(tmp_path_factory: pytest.TempPathFactory):
    """One loopback server (authentication off) for the module, trusting ``CONSOLE``."""
    tmp_path: Path = tmp_path_factory.mktemp("browsers")
    cluster = make_cluster(
        tmp_path,
        FLUX_SERVER__ALLOWED_HOSTS='["flux.lan"]',
        FLUX_SERVER__CORS_ORIGINS=json.dumps([CONSOLE]),
    )
    try:
        cluster.start_server()
        yield cluster
    finally:
        cluster.stop()


def _request(cluster: FluxCluster, method: str, path: str, **kwargs) -> httpx.Response:
    with httpx.Client(base_url=cluster.url, timeout=10) as http:
        return http.request(method, path, **kwargs)


def test_dns_rebinding_a_foreign_host_name_is_refused(loopback: FluxCluster) -> None:
    port = loopback.port
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.nip.io", "localhost.evil.io"):
        response = _request(loopback, "GET", "/workflows", headers={"Host": host})
        assert response.status_code == 403, host
        assert "host name" in response.json()["message"]
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "[::1]", "flux.lan", "app.localhost"):
        assert _request(loopback, "GET", "/workflows", headers={"Host": host}).status_code == 200


def test_a_foreign_page_cannot_change_anything(loopback: FluxCluster) -> None:
    files = {"file": ("flows.py", FLOW, "text/x-python")}
    evil = {"Origin": "http://evil.example"}
    upload = _request(loopback, "POST", "/workflows", files=files, headers=evil)
    assert upload.status_code == 403
    assert "cross-origin" in upload.json()["message"]
    assert _request(loopback, "GET", "/workflows").json() == []  # nothing was registered
    same_site = {"Origin": f"http://localhost:{loopback.port + 1}"}  # another port: another origin
    assert (
        _request(loopback, "POST", "/workflows", files=files, headers=same_site).status_code == 403
    )
    json_body = {"content": b'"x"', "headers": {"Content-Type": "application/json"}}
    run = _request(loopback, "POST", "/workflows/hello/run/async", **json_body)
    assert run.status_code == 404  # a program (no Origin) may; the workflow does not exist
    for headers in (evil, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
        response = _request(
            loopback, "POST", "/workflows/hello/run/async", content=b'"x"',
            headers={"Content-Type": "application/json", **headers},
        )  # fmt: skip
        assert response.status_code == 403, headers
    # A cancel is a GET that changes state: an <img> on a foreign page cannot make it.
    cancel = _request(loopback, "GET", "/workflows/hello/cancel/x1", headers=evil)
    assert cancel.status_code == 403
    listing = _request(loopback, "GET", "/workflows", headers=evil)
    assert listing.status_code == 200  # reading is not refused (a page cannot read the answer)
    mine = _request(loopback, "POST", "/workflows", files=files, headers={"Origin": loopback.url})
    assert mine.status_code == 200
    trusted = _request(loopback, "POST", "/workflows", files=files, headers={"Origin": CONSOLE})
    assert trusted.status_code == 200


def test_json_endpoints_take_json_only(loopback: FluxCluster) -> None:
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        response = _request(
            loopback, "POST", "/admin/secrets", content=b'{"name": "A", "value": 1}',
            headers={"Content-Type": content_type},
        )  # fmt: skip
        assert response.status_code == 415, content_type
        assert "application/json" in response.json()["message"]
    untyped = _request(loopback, "POST", "/admin/secrets", content=b'{"name": "A", "value": 1}')
    assert untyped.status_code == 415
    assert _request(loopback, "GET", "/admin/secrets").json() == []
    typed = _request(loopback, "POST", "/admin/secrets", json={"name": "A", "value": 1})
    assert typed.status_code == 200
    _request(loopback, "DELETE", "/admin/secrets/A")


def test_cors_answers_the_configured_origin_only(loopback: FluxCluster) -> None:
    preflight = {"Access-Control-Request-Method": "POST"}
    allowed = _request(loopback, "OPTIONS", "/workflows", headers={"Origin": CONSOLE, **preflight})
    assert allowed.headers["access-control-allow-origin"] == CONSOLE
    other = {"Origin": "http://evil.example", **preflight}
    refused = _request(loopback, "OPTIONS", "/workflows", headers=other)
    assert "access-control-allow-origin" not in refused.headers


def test_cors_is_off_unless_configured(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path)
    try:
        cluster.start_server()
        headers = {"Origin": CONSOLE, "Access-Control-Request-Method": "POST"}
        response = _request(cluster, "OPTIONS", "/workflows", headers=headers)
        assert "access-control-allow-origin" not in response.headers
        simple = _request(cluster, "GET", "/workflows", headers={"Origin": CONSOLE})
        assert "access-control-allow-origin" not in simple.headers
    finally:
        cluster.stop()


def test_options_and_405_name_every_method_of_the_path(loopback: FluxCluster) -> None:
    options = _request(loopback, "OPTIONS", "/admin/secrets/A")
    assert options.status_code == 204
    assert options.headers["allow"] == "DELETE, GET, HEAD, OPTIONS"
    put = _request(loopback, "PUT", "/admin/secrets/A")
    assert put.status_code == 405
    assert put.headers["allow"] == "DELETE, GET, HEAD, OPTIONS"
    assert put.json()["code"] == "method_not_allowed"
    assert _request(loopback, "OPTIONS", "/schedules/s1").headers["allow"] == (
        "DELETE, GET, HEAD, OPTIONS, PATCH"
    )
    assert _request(loopback, "OPTIONS", "/no/such/path").status_code == 404
