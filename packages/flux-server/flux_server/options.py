"""The server's settings, read once from ``flux.config`` (or given directly)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flux.config import RetentionSettings, SchedulingSettings

if TYPE_CHECKING:
    from flux.config import FluxSettings

__all__ = ["ServerOptions"]


@dataclass(frozen=True, kw_only=True)
class ServerOptions:
    """Everything the server reads from settings; times in seconds.

    Defaults are those of ``flux.config``; :meth:`from_settings` maps the settings tree
    (``server_host``, ``server_port``, ``database_url``, ``home``, ``workers.bootstrap_token``,
    ``workers.heartbeat_interval``, ``security.*``, ``server.*``, ``scheduling``
    and ``retention``).
    """

    host: str = "localhost"
    port: int = 8000
    database_url: str = "sqlite:///.flux/flux.db"
    home: Path = field(default_factory=lambda: Path(".flux"))
    bootstrap_token: str | None = field(default=None, repr=False)
    """``None``: generated once into ``{home}/bootstrap-token`` (mode 0600)."""
    encryption_key: str | None = field(default=None, repr=False)
    """Key material for secrets; ``None``: ``{home}/encryption.key`` (see ``flux.secrets``)."""
    heartbeat_interval: float = 5.0
    """What workers are told to use."""
    heartbeat_timeout: float = 15.0
    """A worker silent this long is declared dead and its executions go back to the queue."""
    claim_timeout: float = 10.0
    """An offer not claimed this long is offered again (to another worker if one fits)."""
    max_request_bytes: int = 10 * 1024 * 1024
    sse_keepalive: float = 10.0
    sync_timeout: float = 300.0
    """The longest a sync-mode request waits before answering with the current state."""
    metrics: bool = True
    """Serve ``GET /metrics`` and count what it shows (:mod:`flux_server.metrics`)."""
    drain_timeout: float = 30.0
    """On SIGTERM, the longest the server waits for its requests in flight to finish."""
    metrics_public: bool = False
    """Serve ``GET /metrics`` without a key while authentication is on (a scraper's)."""
    auth: str = "auto"
    """``on``, ``off`` or ``auto`` (off on a loopback address, on elsewhere); see
    :mod:`flux_server.exposure`."""
    insecure: bool = False
    """Allow ``auth="off"`` on an address other than loopback (``--insecure``)."""
    allowed_hosts: tuple[str, ...] = ()
    """``Host`` names accepted besides loopback ones while authentication is off."""
    cors_origins: tuple[str, ...] = ()
    auth_failure_limit: int = 20
    auth_failure_window: float = 60.0
    tls_certfile: str | None = None
    tls_keyfile: str | None = None
    previous_encryption_keys: tuple[str, ...] = field(default=(), repr=False)
    scheduling: SchedulingSettings = field(default_factory=SchedulingSettings)
    """``[flux.scheduling]``: the scheduler (see ``flux_server.scheduler``)."""
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    """``[flux.retention]``: deleting old finished executions (see ``flux_server.retention``)."""
    tracer_provider: Any = field(default=None, repr=False, compare=False)
    """An OpenTelemetry ``TracerProvider`` for the server's spans; ``None``: the process's,
    when the ``OTEL_*`` environment asks for traces (see ``flux_server.tracing``)."""

    @classmethod
    def from_settings(cls, settings: FluxSettings | None = None, **overrides: Any) -> ServerOptions:
        """Options from ``settings`` (default: ``Configuration.get().settings``)."""
        if settings is None:
            from flux.config import Configuration

            settings = Configuration.get().settings
        options = cls(
            host=settings.server_host,
            port=settings.server_port,
            database_url=settings.database_url,
            home=Path(settings.home),
            bootstrap_token=settings.workers.bootstrap_token,
            encryption_key=settings.security.encryption_key,
            heartbeat_interval=settings.workers.heartbeat_interval,
            heartbeat_timeout=settings.server.heartbeat_timeout,
            claim_timeout=settings.server.claim_timeout,
            max_request_bytes=settings.server.max_request_bytes,
            sse_keepalive=settings.server.sse_keepalive,
            sync_timeout=settings.server.sync_timeout,
            metrics=settings.server.metrics,
            drain_timeout=settings.server.drain_timeout,
            metrics_public=settings.server.metrics_public,
            auth=settings.server.auth,
            allowed_hosts=tuple(settings.server.allowed_hosts),
            cors_origins=tuple(settings.server.cors_origins),
            auth_failure_limit=settings.server.auth_failure_limit,
            auth_failure_window=settings.server.auth_failure_window,
            tls_certfile=settings.server.tls_certfile,
            tls_keyfile=settings.server.tls_keyfile,
            previous_encryption_keys=tuple(settings.security.previous_encryption_keys),
            scheduling=settings.scheduling,
            retention=settings.retention,
        )
        return replace(options, **overrides) if overrides else options

    @property
    def sweep_interval(self) -> float:
        """How often unclaimed offers are looked at again (a safety net; dispatch is driven by
        events)."""
        return max(0.2, min(self.claim_timeout / 2, 5.0))

    @property
    def liveness_interval(self) -> float:
        """How often heartbeats are checked for expiry."""
        return max(0.2, min(self.heartbeat_timeout / 4, 5.0))
