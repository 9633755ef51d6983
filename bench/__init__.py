"""Flux benchmark suite: `make bench` or `python -m bench [group ...]`."""
