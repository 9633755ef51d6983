"""The ``flux`` command line: workflows, workers, ``flux start ...`` and ``flux dev``.

It reaches the server only through :mod:`flux.client`, and starts the server, workers and MCP
server as the separately installed programs they are. See :mod:`flux_cli.app` for how command
groups plug in.
"""
