"""Flux MCP server (work in progress: issue 17)."""
