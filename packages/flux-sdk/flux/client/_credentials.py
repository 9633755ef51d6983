"""Where a client on this machine finds its API key."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from flux.config import ADMIN_KEY_FILE

if TYPE_CHECKING:
    from flux.config import FluxSettings

__all__ = ["ADMIN_KEY_FILE", "default_api_key"]


def default_api_key(settings: FluxSettings | None = None) -> str | None:
    """The API key to send: ``api_key`` from the configuration (``FLUX_API_KEY``, ``flux.toml``),
    else the admin key a server wrote to ``{home}/admin-key`` on this machine (when this user
    may read it), else ``None`` (a server with authentication off needs none).

    Raises:
        flux.errors.UsageError: the configuration is invalid.
    """
    if settings is None:
        from flux.config import Configuration

        settings = Configuration.get().settings
    if settings.api_key:
        return settings.api_key.strip()
    try:
        key = (Path(settings.home) / ADMIN_KEY_FILE).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return key or None
