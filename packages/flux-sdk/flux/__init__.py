"""Flux SDK."""
