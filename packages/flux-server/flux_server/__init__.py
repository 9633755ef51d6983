"""Flux server."""
