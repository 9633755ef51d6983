"""Flux server: the HTTP API, event-driven dispatch to workers, heartbeats and secrets, over
SQLAlchemy (SQLite by default, PostgreSQL for production).

``create_app(settings)`` builds the FastAPI application; ``flux-server`` serves it.
"""

from flux_server.app import create_app
from flux_server.options import ServerOptions

__all__ = ["ServerOptions", "create_app"]
