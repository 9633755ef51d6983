"""Flux settings: one typed tree, loaded from the environment, ``flux.toml`` and ``pyproject.toml``.

Sources, highest precedence first:

1. values passed to :meth:`Configuration.override` (tests and embedding code);
2. environment variables ``FLUX_*``, with ``__`` between nesting levels
   (``FLUX_SERVER_PORT=9000``, ``FLUX_WORKERS__BOOTSTRAP_TOKEN=...``);
3. ``flux.toml``, table ``[flux]`` (nested tables ``[flux.workers]``, ``[flux.scheduling]``, ...);
   the MCP server's settings may also sit in a top-level ``[mcp]`` table there, as the
   specification's examples write them (``[flux.mcp]`` wins where both set a key);
4. ``pyproject.toml``, table ``[tool.flux]`` (nested ``[tool.flux.workers]``, ...);
5. the defaults declared here.

Sources are deep-merged: ``[flux.workers] retry_attempts = 5`` in ``flux.toml`` and
``FLUX_WORKERS__BOOTSTRAP_TOKEN`` in the environment both apply. The two files are read from the
directory named by ``FLUX_CONFIG_DIR`` or else the current working directory, at load time.

Unknown keys and invalid values raise :class:`flux.errors.UsageError` naming the key; values of
secret keys (tokens, encryption keys) never appear in messages or reprs.
"""

from __future__ import annotations

import os
import threading
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from flux.errors import UsageError

__all__ = [
    "ADMIN_KEY_FILE",
    "CONFIG_DIR_ENV",
    "Configuration",
    "FluxSettings",
    "MCPSettings",
    "RetentionSettings",
    "SchedulingSettings",
    "SecuritySettings",
    "ServerSettings",
    "WorkerSettings",
    "get_settings",
]

ADMIN_KEY_FILE = "admin-key"
"""The file in ``home`` where a server with authentication on writes the admin key it
generated (mode 0600); clients on that machine use it when no ``api_key`` is set."""

CONFIG_DIR_ENV = "FLUX_CONFIG_DIR"
"""Environment variable naming the directory that holds ``flux.toml`` / ``pyproject.toml``."""

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Keys whose values are credentials: kept out of reprs and error messages.
_SECRET_KEYS = frozenset(
    {"api_key", "bootstrap_token", "encryption_key", "previous_encryption_keys"}
)


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WorkerSettings(_Section):
    """``[flux.workers]``: how workers reach the server and the defaults for task retries."""

    bootstrap_token: str | None = Field(default=None, repr=False)
    server_url: str = "http://localhost:8000"
    """The server a worker works through; several servers of one database separated by
    commas, in order of preference (the worker moves to the next when one stops answering)."""
    default_timeout: float = Field(default=0.0, ge=0)
    """Default task timeout in seconds; 0 means no timeout."""
    retry_attempts: int = Field(default=3, ge=0)
    retry_delay: float = Field(default=1.0, ge=0)
    retry_backoff: float = Field(default=2.0, ge=1)
    heartbeat_interval: float = Field(default=5.0, gt=0)
    max_concurrent_executions: int = Field(default=16, ge=1)
    isolation: Literal["inprocess", "subprocess"] = "inprocess"
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    """Serve the worker's Prometheus metrics on this port (``None``: not served)."""
    metrics_host: str = "localhost"
    """The address the worker's metrics port binds."""


class ServerSettings(_Section):
    """``[flux.server]``: server timeouts and limits (seconds, unless the name says otherwise),
    and who may call it (see ``docs/security.md``)."""

    heartbeat_timeout: float = Field(default=15.0, gt=0)
    claim_timeout: float = Field(default=10.0, gt=0)
    max_request_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    sse_keepalive: float = Field(default=10.0, gt=0)
    sync_timeout: float = Field(default=300.0, gt=0)
    metrics: bool = True
    """Serve ``GET /metrics`` and count what it shows; ``false``: neither."""
    drain_timeout: float = Field(default=30.0, ge=0)
    """On SIGTERM, the longest the server waits for its requests in flight before it stops."""
    metrics_public: bool = False
    """Serve ``GET /metrics`` without an API key while authentication is on."""
    auth: Literal["auto", "on", "off"] = "auto"
    """API keys required: ``auto`` is off on a loopback address and on on any other."""
    allowed_hosts: list[str] = []
    """``Host`` names accepted besides loopback ones while authentication is off."""
    cors_origins: list[str] = []
    """Web origins allowed to call the API from a browser (CORS); none by default."""
    auth_failure_limit: int = Field(default=20, ge=1)
    """Failed authentications a client address may make per ``auth_failure_window``."""
    auth_failure_window: float = Field(default=60.0, gt=0)
    tls_certfile: str | None = None
    """Serve HTTPS with this certificate chain (PEM) and ``tls_keyfile``."""
    tls_keyfile: str | None = None


class SecuritySettings(_Section):
    """``[flux.security]``: ``encryption_key`` is the key material for ``flux.secrets``;
    ``previous_encryption_keys`` are keys being rotated away from (secrets written with them
    are read, and re-encrypted with ``encryption_key`` when the server starts)."""

    encryption_key: str | None = Field(default=None, repr=False)
    previous_encryption_keys: list[str] = Field(default=[], repr=False)


class MCPSettings(_Section):
    """``[flux.mcp]`` (or ``[mcp]`` in ``flux.toml``): the MCP server, flux-mcp."""

    name: str = "flux-workflows"
    host: str = "localhost"
    port: int = Field(default=8080, ge=0, le=65535)
    server_url: str = "http://localhost:8000"
    transport: Literal["stdio", "streamable-http", "sse"] = "streamable-http"
    read_only: bool = False
    """Offer only the tools that change nothing."""
    auth: Literal["auto", "on", "off"] = "auto"
    """Bearer tokens required on the HTTP transports, checked against the Flux server's API
    keys: ``auto`` is on beyond loopback and off on it, as the server's ``server.auth``."""
    allowed_hosts: tuple[str, ...] = ()
    """``Host`` values the HTTP transports accept besides loopback names and the bind address
    (``"mcp.example.com"``, ``"10.0.0.5:8080"``, ``"10.0.0.5:*"``); others get HTTP 421."""
    allowed_origins: tuple[str, ...] = ()
    """``Origin`` values accepted besides loopback origins (``"https://app.example.com"``);
    others get HTTP 403."""
    api_key: str | None = Field(default=None, repr=False)
    """flux-mcp's own credential for the Flux server, sent as ``Authorization: Bearer``."""
    sync_wait_seconds: float = Field(default=60.0, gt=0)
    """How long the ``*_sync`` tools follow an execution before answering with its current
    state (RUNNING) instead of waiting longer."""
    max_request_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    """Larger MCP requests (an ``upload_workflow`` of a big file) get HTTP 413."""


class SchedulingSettings(_Section):
    """``[flux.scheduling]``: the scheduler inside the server."""

    auto_schedule_enabled: bool = True
    auto_schedule_suffix: str = "_auto"
    poll_interval: float = Field(default=30.0, gt=0)
    max_concurrent_executions: int = Field(default=10, ge=1)
    execution_timeout: float = Field(default=3600.0, gt=0)
    schedule_check_tolerance: float = Field(default=1.0, ge=0)
    once_schedule_tolerance: float = Field(default=60.0, ge=0)
    catch_up: Literal["once", "skip"] = "once"
    """After downtime: run a missed schedule once (``once``) or wait for its next run (``skip``)."""


class RetentionSettings(_Section):
    """``[flux.retention]``: finished executions (with their events and schedule history) are
    deleted by the server once older than an age. Off by default."""

    max_age_days: float | None = Field(default=None, gt=0)
    """Delete executions finished (last updated) longer ago than this; ``None`` keeps them."""
    workflows: dict[str, float | None] = {}
    """Per-workflow ages in days, overriding ``max_age_days``; ``None`` or ``inf`` keeps that
    workflow's."""
    interval: float = Field(default=300.0, gt=0)
    """Seconds between the server's retention passes."""
    batch_size: int = Field(default=500, ge=1, le=10_000)
    """Executions deleted per transaction, so a pass never holds the database for long."""


class FluxSettings(BaseSettings):
    """The whole settings tree. Frozen: change settings through :class:`Configuration`.

    Constructing it reads the sources described in the module docstring; keyword arguments take
    precedence over all of them. When ``database_url`` is not set anywhere it is derived from
    ``home`` (``sqlite:///{home}/flux.db``).
    """

    model_config = SettingsConfigDict(
        env_prefix="FLUX_",
        env_nested_delimiter="__",
        case_sensitive=False,
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    debug: bool = False
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    """How the server and worker write log lines: ``text``, or ``json`` (one object per line,
    carrying ``execution_id`` and ``trace_id`` where known; see ``flux.logs``)."""
    server_host: str = "localhost"
    server_port: int = Field(default=8000, ge=0, le=65535)
    home: str = Field(default=".flux", min_length=1)
    database_url: str = "sqlite:///.flux/flux.db"
    serializer: Literal["json", "pkl"] = "pkl"
    local_database: str | None = None
    """SQLite file for local runs; ``None`` derives it (see :attr:`local_db_path`)."""
    api_key: str | None = Field(default=None, repr=False)
    """The API key clients on this machine send (``FLUX_API_KEY``)."""

    workers: WorkerSettings = WorkerSettings()
    server: ServerSettings = ServerSettings()
    security: SecuritySettings = SecuritySettings()
    mcp: MCPSettings = MCPSettings()
    scheduling: SchedulingSettings = SchedulingSettings()
    retention: RetentionSettings = RetentionSettings()

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in _LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(_LOG_LEVELS)}")
        return level

    @model_validator(mode="before")
    @classmethod
    def _derive_database_url(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("database_url") is None and data.get("home"):
            home = data["home"]
            if isinstance(home, str | os.PathLike):
                data = {**data, "database_url": f"sqlite:///{Path(home).as_posix()}/flux.db"}
        return data

    @property
    def local_db_path(self) -> Path:
        """The SQLite file local runs use: ``local_database``, else the file of a SQLite
        ``database_url``, else ``{home}/flux.db``."""
        if self.local_database:
            return Path(self.local_database)
        path = _sqlite_path(self.database_url)
        return path if path is not None else Path(self.home) / "flux.db"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        directory = Path(os.environ.get(CONFIG_DIR_ENV) or Path.cwd())
        return (
            init_settings,
            env_settings,
            _TomlTableSource(settings_cls, directory / "flux.toml", ("flux",)),
            _TomlTableSource(settings_cls, directory / "flux.toml", ("mcp",), key="mcp"),
            _TomlTableSource(settings_cls, directory / "pyproject.toml", ("tool", "flux")),
        )


def _sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite[+driver]:///path`` URL; ``None`` for other databases or memory."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+", 1)[0].lower() != "sqlite":
        return None
    # sqlite:///relative.db -> "/relative.db" after the authority; sqlite:////abs.db -> "//abs.db"
    path = rest.split("?", 1)[0]
    if not path.startswith("/"):
        return None
    path = path[1:]
    if not path or path == ":memory:":
        return None
    return Path(path)


class _TomlTableSource(PydanticBaseSettingsSource):
    """One table of one TOML file; a missing file or table contributes nothing. With ``key``
    the table is the settings' section of that name (``[mcp]`` as ``mcp``), else the whole
    settings tree."""

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        path: Path,
        table: tuple[str, ...],
        key: str | None = None,
    ):
        super().__init__(settings_cls)
        self.path = path
        self.table = table
        self.key = key

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        # Unused: __call__ returns the whole table at once.
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        try:
            with self.path.open("rb") as fh:
                document = tomllib.load(fh)
        except FileNotFoundError:
            return {}
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise UsageError(f"cannot read {str(self.path)!r}: {exc}", path=str(self.path)) from exc
        data: Any = document
        for part in self.table:
            if not isinstance(data, dict) or part not in data:
                return {}
            data = data[part]
        if not isinstance(data, dict):
            table = ".".join(self.table)
            raise UsageError(
                f"[{table}] in {str(self.path)!r} must be a table", path=str(self.path)
            )
        return data if self.key is None else {self.key: data}


def _shows_input(loc: tuple[Any, ...], value: Any) -> bool:
    # Containers may hold a credential; secret keys never show their value.
    if any(str(part) in _SECRET_KEYS for part in loc):
        return False
    return isinstance(value, str | int | float | bool | None)


def _describe_validation_error(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors(include_url=False):
        key = ".".join(str(part) for part in error["loc"]) or "settings"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            lines.append(f"{key}: unknown setting")
        elif _shows_input(error["loc"], error["input"]):
            lines.append(f"{key}: {message} (got {error['input']!r})")
        else:
            lines.append(f"{key}: {message}")
    return "invalid Flux configuration: " + "; ".join(lines)


def _load(overrides: Mapping[str, Any]) -> FluxSettings:
    try:
        return FluxSettings(**overrides)
    except ValidationError as exc:
        raise UsageError(_describe_validation_error(exc)) from None
    except SettingsError as exc:
        raise UsageError(f"invalid Flux configuration: {exc}") from None


def _deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, BaseModel):
            # A whole section object replaces the section.
            value = value.model_dump()
            merged[key] = value
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = dict(value) if isinstance(value, Mapping) else value
    return merged


class Configuration:
    """The process-wide settings holder.

    ``Configuration.get()`` returns the singleton; :attr:`settings` is loaded from the sources on
    first access.

    - :meth:`override` layers values above every source (deep-merged, validated);
    - :meth:`reload` re-reads every source now and drops all overrides;
    - :meth:`reset` drops overrides and the loaded settings, returning the singleton to the state
      of a fresh process: the next access loads from the sources again. It does not ignore the
      environment or the files, so "defaults" means what a new process would see, never a state
      that silently disagrees with ``FLUX_*`` variables.
    """

    _instance: ClassVar[Configuration | None] = None
    _instance_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._overrides: dict[str, Any] = {}
        self._settings: FluxSettings | None = None

    @classmethod
    def get(cls) -> Configuration:
        """The process-wide instance."""
        if cls._instance is None:
            with cls._instance_lock:
                if cls._instance is None:
                    cls._instance = cls()
        return cls._instance

    @property
    def settings(self) -> FluxSettings:
        """The current settings. Raises UsageError when a source holds an invalid value."""
        settings = self._settings
        if settings is None:
            with self._lock:
                if self._settings is None:
                    self._settings = _load(self._overrides)
                settings = self._settings
        return settings

    def override(self, **values: Any) -> FluxSettings:
        """Layer ``values`` above every source and return the new settings.

        Nested sections merge: ``override(workers={"bootstrap_token": "t"})`` keeps the other
        worker settings. Overrides accumulate until :meth:`reload` or :meth:`reset`.

        Raises:
            UsageError: a key is unknown or a value invalid; the previous settings stay.
        """
        with self._lock:
            overrides = _deep_merge(self._overrides, values)
            settings = _load(overrides)
            self._overrides, self._settings = overrides, settings
            return settings

    def reload(self) -> FluxSettings:
        """Drop overrides and re-read the environment and files now.

        Raises:
            UsageError: a source holds an invalid value; the previous settings stay.
        """
        with self._lock:
            settings = _load({})
            self._overrides, self._settings = {}, settings
            return settings

    def reset(self) -> None:
        """Drop overrides and the loaded settings; the next access loads from the sources."""
        with self._lock:
            self._overrides, self._settings = {}, None


def get_settings() -> FluxSettings:
    """Shortcut for ``Configuration.get().settings``."""
    return Configuration.get().settings
