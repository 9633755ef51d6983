"""The client's API key: sent on every call, found where the configuration says."""

from __future__ import annotations

import httpx
import pytest
from flux.client import FluxClient, default_api_key
from flux.config import ADMIN_KEY_FILE, FluxSettings


def test_the_api_key_goes_with_every_call_and_worker_tokens_replace_it() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        if request.url.path == "/auth/whoami":
            body = {"kind": "key", "name": "ci", "role": "viewer", "authentication": True}
            return httpx.Response(200, json=body)
        return httpx.Response(200, json={"secrets": {}})

    with FluxClient("http://flux.test", transport=httpx.MockTransport(handler), api_key="k1") as c:
        assert c.whoami().name == "ci"
        c.worker("w1", "session").get_secrets("e1", ["A"])
    assert seen == ["Bearer k1", "Bearer session"]


def test_the_default_key_is_the_setting_else_the_admin_key_file(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    assert default_api_key(FluxSettings(home=str(home))) is None
    home.mkdir()
    (home / ADMIN_KEY_FILE).write_text("flux_from_file\n")
    assert default_api_key(FluxSettings(home=str(home))) == "flux_from_file"
    monkeypatch.setenv("FLUX_API_KEY", "flux_from_env")
    assert default_api_key(FluxSettings(home=str(home))) == "flux_from_env"


def test_the_key_never_shows_in_settings_or_their_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUX_API_KEY", "flux_secret_value")
    assert "flux_secret_value" not in repr(FluxSettings())
