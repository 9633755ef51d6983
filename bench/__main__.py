"""Run benchmark groups and print a Markdown table of figures.

python -m bench            # every group
python -m bench sdk        # one group
python -m bench sustained  # not in the default groups: latency per window under a steady load
python -m bench agents     # not in the default groups: flux-agents' turn overhead, replay, import
"""

from __future__ import annotations

import importlib
import platform
import sys

GROUPS = ["sdk", "server"]


def main(argv: list[str]) -> None:
    groups = argv or GROUPS
    print(
        f"machine: {platform.machine()} {platform.processor() or ''}, "
        f"{_cores()} cores, Python {platform.python_version()}"
    )
    print(f"calibration: sum(range(100000)) takes {_calibration_ms():.2f} ms (best of 7)")
    header = "| benchmark | value | unit | target |\n|---|---:|---|---|"
    for group in groups:
        module = importlib.import_module(f"bench.{group}")
        for name, value, unit, target in module.main():
            # Printed before the first figure: a group may print its own tables first.
            if header:
                print(header)
                header = ""
            print(f"| {name} | {value:,.1f} | {unit} | {target} |", flush=True)


def _calibration_ms() -> float:
    """A fixed CPU-bound loop, so figures from sessions on a VM of varying speed can be compared."""
    import timeit

    return min(timeit.repeat("sum(range(100000))", number=10, repeat=7)) / 10 * 1e3


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


if __name__ == "__main__":
    main(sys.argv[1:])
