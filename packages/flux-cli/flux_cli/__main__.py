"""``flux``: the console script and ``python -m flux_cli``."""

from __future__ import annotations

from flux_cli.app import app


def main() -> None:
    """Run ``flux`` with the process's arguments; exits with the command's code."""
    app()


if __name__ == "__main__":
    main()
