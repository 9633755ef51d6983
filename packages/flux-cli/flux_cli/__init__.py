"""Flux CLI."""
