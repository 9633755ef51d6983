"""Flux worker."""
