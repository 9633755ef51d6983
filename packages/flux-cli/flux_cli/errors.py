"""How every failure becomes one readable line on stderr and an exit code.

Commands raise what they naturally raise (``flux.errors`` from the client, ``OSError``, ...) or
:class:`CliError`; the root group (:mod:`flux_cli.app`) turns each into ``error: <message>``
through :func:`describe`. Exit codes: :data:`EXIT_USAGE` (2) for a wrong command line or
configuration, :data:`EXIT_FAILURE` (1) for an operation that failed.
"""

from __future__ import annotations

import re

from flux.errors import ApiError, FluxError, ProtocolError, UsageError

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "CliError",
    "describe",
    "one_line",
    "unreachable_message",
]

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A failure the CLI reports as ``error: <message>`` with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def unreachable_message(url: str) -> str:
    """``url``: one URL, or several separated by commas (then none answered)."""
    urls = [u for u in url.split(",") if u]
    if len(urls) > 1:
        return f"cannot reach any of the Flux servers at {', '.join(urls)}: are they running?"
    return f"cannot reach the Flux server at {url}: is it running? (flux dev / flux start server)"


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) collapsed to one space."""
    return re.sub(r"\s+", " ", text).strip()


def describe(exc: BaseException, server_url: str | None) -> tuple[str, int]:
    """The one-line message and exit code for ``exc``.

    ``server_url`` names the server in the "cannot reach" message (``None``: the URL the client
    reported).
    """
    if isinstance(exc, CliError):
        return one_line(exc.message), exc.exit_code
    if isinstance(exc, ApiError) and exc.status_code == 0:
        url = server_url or str(exc.details.get("url", "the configured URL"))
        return unreachable_message(url), EXIT_FAILURE
    if isinstance(exc, ProtocolError | ApiError):
        return one_line(exc.message), EXIT_FAILURE
    if isinstance(exc, UsageError):
        return one_line(exc.message), EXIT_USAGE
    if isinstance(exc, FluxError):
        return one_line(exc.message), EXIT_FAILURE
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return one_line(f"{exc.strerror}{where}"), EXIT_FAILURE
    if _is_validation_error(exc):
        where = f"the server at {server_url}" if server_url else "the server"
        return (
            one_line(f"{where} sent an answer this flux-cli does not understand: {exc}"),
            EXIT_FAILURE,
        )
    message = f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)"
    return one_line(message), EXIT_FAILURE


def _is_validation_error(exc: BaseException) -> bool:
    from pydantic import ValidationError

    return isinstance(exc, ValidationError)
