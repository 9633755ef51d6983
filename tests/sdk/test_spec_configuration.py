"""The spec's programmatic configuration (flux-core 0.18 README): its SDK code block, run
with asserted results."""

from __future__ import annotations


def test_programmatic_configuration(monkeypatch):
    from flux.config import Configuration

    monkeypatch.setenv("FLUX_SERVER_PORT", "8123")

    config = Configuration.get()
    assert config.settings.server_port == 8123
    assert config.settings.workers.bootstrap_token is None

    config.override(debug=True, server_port=9000, workers={"bootstrap_token": "test-token"})
    assert config.settings.debug is True
    assert config.settings.server_port == 9000
    assert config.settings.workers.bootstrap_token == "test-token"
    assert config.settings.workers.server_url == "http://localhost:8000"  # merged, not replaced

    config.reload()
    assert config.settings.server_port == 8123  # overrides dropped, the environment read again
    assert config.settings.debug is False

    config.override(server_port=9001)
    config.reset()
    assert config.settings.server_port == 8123
    assert Configuration.get() is config
