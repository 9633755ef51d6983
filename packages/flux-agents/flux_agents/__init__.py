"""Flux agents (work in progress: issue 19)."""
