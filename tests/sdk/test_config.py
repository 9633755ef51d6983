import os
import textwrap
from pathlib import Path

import pytest
from flux.config import (
    Configuration,
    FluxSettings,
    WorkerSettings,
    get_settings,
)
from flux.errors import UsageError


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """An empty working directory, no FLUX_* variables, and a fresh singleton before and after."""
    for name in list(os.environ):
        if name.upper().startswith("FLUX_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    Configuration.get().reset()
    yield tmp_path
    Configuration.get().reset()


def write(path: Path, text: str) -> None:
    path.write_text(textwrap.dedent(text))


def test_defaults_without_sources():
    settings = FluxSettings()
    assert settings.debug is False
    assert settings.log_level == "INFO"
    assert (settings.server_host, settings.server_port) == ("localhost", 8000)
    assert settings.home == ".flux"
    assert settings.database_url == "sqlite:///.flux/flux.db"
    assert settings.serializer == "pkl"
    assert settings.local_database is None
    assert settings.local_db_path == Path(".flux/flux.db")
    assert settings.workers == WorkerSettings(
        bootstrap_token=None,
        server_url="http://localhost:8000",
        default_timeout=0,
        retry_attempts=3,
        retry_delay=1.0,
        retry_backoff=2.0,
        heartbeat_interval=5.0,
        max_concurrent_executions=16,
        isolation="inprocess",
    )
    assert settings.server.heartbeat_timeout == 15.0
    assert settings.server.claim_timeout == 10.0
    assert settings.server.max_request_bytes == 10 * 1024 * 1024
    assert settings.server.sse_keepalive == 10.0
    assert settings.server.sync_timeout == 300.0
    assert settings.security.encryption_key is None
    assert settings.mcp.model_dump() == {
        "name": "flux-workflows",
        "host": "localhost",
        "port": 8080,
        "server_url": "http://localhost:8000",
        "transport": "streamable-http",
        "read_only": False,
        "auth": "auto",
        "allowed_hosts": (),
        "allowed_origins": (),
        "api_key": None,
        "sync_wait_seconds": 60.0,
        "max_request_bytes": 10 * 1024 * 1024,
    }
    assert settings.scheduling.model_dump() == {
        "auto_schedule_enabled": True,
        "auto_schedule_suffix": "_auto",
        "poll_interval": 30.0,
        "max_concurrent_executions": 10,
        "execution_timeout": 3600.0,
        "schedule_check_tolerance": 1.0,
        "once_schedule_tolerance": 60.0,
        "catch_up": "once",
    }


def test_pyproject_tool_flux_table(tmp_path):
    write(
        tmp_path / "pyproject.toml",
        """
        [project]
        name = "app"

        [tool.flux]
        server_port = 9200
        serializer = "json"

        [tool.flux.workers]
        retry_attempts = 8
        """,
    )
    settings = FluxSettings()
    assert settings.server_port == 9200
    assert settings.serializer == "json"
    assert settings.workers.retry_attempts == 8


def test_flux_toml_beats_pyproject_and_merges_nested_tables(tmp_path):
    write(
        tmp_path / "pyproject.toml",
        """
        [tool.flux]
        server_port = 9200
        log_level = "warning"

        [tool.flux.workers]
        retry_attempts = 8
        retry_delay = 4
        """,
    )
    write(
        tmp_path / "flux.toml",
        """
        [flux]
        server_port = 9100

        [flux.workers]
        retry_attempts = 7

        [flux.scheduling]
        catch_up = "skip"
        """,
    )
    settings = FluxSettings()
    assert settings.server_port == 9100
    assert settings.log_level == "WARNING"  # only in pyproject.toml, normalized
    assert settings.workers.retry_attempts == 7
    assert settings.workers.retry_delay == 4.0  # pyproject's nested value survives the merge
    assert settings.scheduling.catch_up == "skip"


def test_environment_beats_files_and_merges_nested(tmp_path, monkeypatch):
    write(
        tmp_path / "flux.toml",
        """
        [flux]
        server_port = 9100
        debug = false

        [flux.workers]
        retry_attempts = 7
        bootstrap_token = "from-file"
        """,
    )
    monkeypatch.setenv("FLUX_SERVER_PORT", "9300")
    monkeypatch.setenv("FLUX_DEBUG", "true")
    monkeypatch.setenv("FLUX_WORKERS__BOOTSTRAP_TOKEN", "from-env")
    monkeypatch.setenv("FLUX_MCP__TRANSPORT", "sse")
    settings = FluxSettings()
    assert settings.server_port == 9300
    assert settings.debug is True
    assert settings.workers.bootstrap_token == "from-env"
    assert settings.workers.retry_attempts == 7
    assert settings.mcp.transport == "sse"


def test_files_are_read_from_flux_config_dir(tmp_path, monkeypatch):
    elsewhere = tmp_path / "conf"
    elsewhere.mkdir()
    write(elsewhere / "flux.toml", "[flux]\nserver_port = 9400\n")
    write(tmp_path / "flux.toml", "[flux]\nserver_port = 9500\n")
    monkeypatch.setenv("FLUX_CONFIG_DIR", str(elsewhere))
    assert FluxSettings().server_port == 9400


def test_files_are_looked_up_at_load_time(tmp_path, monkeypatch):
    other = tmp_path / "other"
    other.mkdir()
    write(other / "flux.toml", "[flux]\nserver_port = 9600\n")
    assert FluxSettings().server_port == 8000
    monkeypatch.chdir(other)
    assert FluxSettings().server_port == 9600


def test_spec_example_runs(capsys):
    from flux.config import Configuration

    config = Configuration.get()
    print(f"Server port: {config.settings.server_port}")
    print(f"Worker bootstrap token: {config.settings.workers.bootstrap_token}")
    config.override(debug=True, server_port=9000, workers={"bootstrap_token": "test-token"})
    assert config.settings.debug is True
    assert config.settings.server_port == 9000
    assert config.settings.workers.bootstrap_token == "test-token"
    config.reload()
    assert config.settings.server_port == 8000
    config.reset()
    assert capsys.readouterr().out == "Server port: 8000\nWorker bootstrap token: None\n"


def test_get_is_a_singleton_and_get_settings_is_its_settings():
    assert Configuration.get() is Configuration.get()
    Configuration.get().override(server_port=9001)
    assert get_settings() is Configuration.get().settings
    assert get_settings().server_port == 9001


def test_override_deep_merges_and_accumulates(tmp_path, monkeypatch):
    write(tmp_path / "flux.toml", "[flux.workers]\nretry_attempts = 7\n")
    monkeypatch.setenv("FLUX_WORKERS__SERVER_URL", "http://env:8000")
    config = Configuration.get()
    config.override(workers={"bootstrap_token": "t"})
    config.override(workers={"retry_delay": 9}, server_port=9000)
    workers = config.settings.workers
    assert workers.bootstrap_token == "t"
    assert workers.retry_delay == 9.0
    assert workers.retry_attempts == 7  # from flux.toml
    assert workers.server_url == "http://env:8000"  # from the environment
    assert workers.retry_backoff == 2.0  # default
    assert config.settings.server_port == 9000


def test_override_beats_environment(monkeypatch):
    monkeypatch.setenv("FLUX_SERVER_PORT", "9300")
    config = Configuration.get()
    assert config.settings.server_port == 9300
    assert config.override(server_port=9000).server_port == 9000


def test_override_with_a_section_object_replaces_the_section():
    config = Configuration.get()
    config.override(workers={"retry_attempts": 9, "bootstrap_token": "t"})
    config.override(workers=WorkerSettings(retry_delay=5))
    assert config.settings.workers.retry_delay == 5
    assert config.settings.workers.retry_attempts == 3
    assert config.settings.workers.bootstrap_token is None


def test_invalid_override_names_the_key_and_keeps_previous_settings():
    config = Configuration.get()
    config.override(server_port=9000)
    with pytest.raises(UsageError, match=r"server_port.*'not-a-port'"):
        config.override(server_port="not-a-port")
    with pytest.raises(UsageError, match=r"workers\.retry_attempts"):
        config.override(workers={"retry_attempts": -1})
    with pytest.raises(UsageError, match=r"no_such_setting: unknown setting"):
        config.override(no_such_setting=1)
    assert config.settings.server_port == 9000
    assert config.settings.workers.retry_attempts == 3


def test_reload_drops_overrides_and_rereads_files(tmp_path):
    config = Configuration.get()
    config.override(debug=True)
    write(tmp_path / "flux.toml", "[flux]\nserver_port = 9100\n")
    assert config.settings.server_port == 8000  # loaded once, cached
    settings = config.reload()
    assert settings is config.settings
    assert settings.server_port == 9100
    assert settings.debug is False


def test_reset_drops_everything_and_loads_lazily(tmp_path):
    config = Configuration.get()
    config.override(debug=True)
    config.reset()
    write(tmp_path / "flux.toml", "[flux]\nserver_port = 9100\n")
    assert config.settings.debug is False
    assert config.settings.server_port == 9100


def test_reload_with_an_invalid_source_keeps_previous_settings(tmp_path):
    config = Configuration.get()
    config.override(server_port=9000)
    write(tmp_path / "flux.toml", "[flux]\nserializer = 'xml'\n")
    with pytest.raises(UsageError, match=r"serializer.*'xml'"):
        config.reload()
    assert config.settings.server_port == 9000


def test_invalid_environment_value_names_the_key(monkeypatch):
    monkeypatch.setenv("FLUX_SCHEDULING__POLL_INTERVAL", "soon")
    with pytest.raises(UsageError, match=r"scheduling\.poll_interval.*'soon'"):
        _ = Configuration.get().settings


def test_unknown_key_in_file_is_reported(tmp_path):
    write(tmp_path / "flux.toml", "[flux.workers]\nretry_attempt = 4\n")
    with pytest.raises(UsageError, match=r"workers\.retry_attempt: unknown setting"):
        get_settings()


def test_malformed_toml_names_the_file(tmp_path):
    write(tmp_path / "flux.toml", "[flux\nserver_port = \n")
    with pytest.raises(UsageError, match=r"flux\.toml"):
        get_settings()


def test_flux_table_that_is_not_a_table(tmp_path):
    write(tmp_path / "flux.toml", 'flux = "oops"\n')
    with pytest.raises(UsageError, match=r"\[flux\].*must be a table"):
        get_settings()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("log_level", "LOUD"),
        ("serializer", "yaml"),
        ("server_port", 70000),
        ("home", ""),
    ],
)
def test_invalid_top_level_values(key, value):
    with pytest.raises(UsageError, match=key):
        Configuration.get().override(**{key: value})


def test_secret_values_stay_out_of_errors_and_reprs(tmp_path):
    config = Configuration.get()
    settings = config.override(
        workers={"bootstrap_token": "tok-3f9a"}, security={"encryption_key": "key-77c1"}
    )
    assert "tok-3f9a" not in repr(settings)
    assert "key-77c1" not in repr(settings)
    assert "tok-3f9a" not in str(settings)
    write(tmp_path / "flux.toml", "[flux.workers]\nbootstrap_token = 918273\n")
    with pytest.raises(UsageError) as info:
        config.reload()
    assert "workers.bootstrap_token" in str(info.value)
    assert "918273" not in str(info.value)
    write(tmp_path / "flux.toml", '[flux.security]\nencryption_key = ["key-in-a-list"]\n')
    with pytest.raises(UsageError) as info:
        config.reload()
    assert "security.encryption_key" in str(info.value)
    assert "key-in-a-list" not in str(info.value)


def test_settings_are_frozen():
    settings = FluxSettings()
    with pytest.raises(ValueError, match="frozen"):
        settings.server_port = 1  # type: ignore[misc]  # proving assignment is refused
    with pytest.raises(ValueError, match="frozen"):
        settings.workers.retry_attempts = 1  # type: ignore[misc]  # same, nested


def test_database_url_follows_home_unless_set():
    assert FluxSettings(home="/data/flux").database_url == "sqlite:////data/flux/flux.db"
    assert FluxSettings(home="/data/flux").local_db_path == Path("/data/flux/flux.db")
    explicit = FluxSettings(home="/data/flux", database_url="sqlite:///other.db")
    assert explicit.database_url == "sqlite:///other.db"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"local_database": "/tmp/local.db"}, Path("/tmp/local.db")),
        ({"database_url": "sqlite:////var/lib/flux.db"}, Path("/var/lib/flux.db")),
        ({"database_url": "sqlite+aiosqlite:///rel/flux.db?mode=rwc"}, Path("rel/flux.db")),
        ({"database_url": "postgresql://u@db/flux", "home": "/h"}, Path("/h/flux.db")),
        ({"database_url": "sqlite://", "home": "/h"}, Path("/h/flux.db")),
        ({"database_url": "sqlite:///:memory:", "home": "/h"}, Path("/h/flux.db")),
    ],
)
def test_local_db_path(values, expected):
    assert FluxSettings(**values).local_db_path == expected
