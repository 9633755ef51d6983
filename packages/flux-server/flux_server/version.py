"""The installed version of flux-server."""

from importlib.metadata import PackageNotFoundError, version

__all__ = ["SERVER_VERSION"]

try:
    SERVER_VERSION = version("flux-server")
except PackageNotFoundError:  # running from a source tree without metadata
    SERVER_VERSION = "0+unknown"
