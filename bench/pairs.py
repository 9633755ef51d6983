"""Before and after: the benchmark groups run on two commits in interleaved pairs, with medians
and their ratio per figure.

    python -m bench.pairs BEFORE [AFTER] [--rounds N] [--groups sdk,server]
    FLUX_BENCH_DB=sqlite python -m bench.pairs 5f5ed72 --rounds 5 --groups server

Each side is a ``git worktree`` of its commit (AFTER defaults to this checkout as it is), both
driven by this checkout's harness (``bench/``), only ``PYTHONPATH`` differing, so the old code
runs under the same measurements. Rounds alternate the order (before, after; after, before;
...), so each run sits next to its pair on this VM, whose speed drifts more than 5 % within
minutes. A figure is "worse" when its ratio is past 5 % the wrong way: lower for rates, higher
for times, CPU and memory. The ``FLUX_BENCH_*`` variables pass through to every run.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.server import ROOT

PACKAGES = ("flux-sdk", "flux-server", "flux-worker", "flux-cli", "flux-mcp", "flux-agents")
_ROW = re.compile(r"^\| (?P<name>[^|]+?) \| (?P<value>[-\d,.]+) \| (?P<unit>[^|]*?) \| [^|]* \|$")
_HIGHER_IS_BETTER = ("/s",)


def _tree(ref: str | None, into: Path) -> Path:
    """The folder whose packages a side runs: this checkout, or a worktree of ``ref``."""
    if ref is None:
        return ROOT
    path = into / ref.replace("/", "_")
    subprocess.run(["git", "worktree", "add", "-q", "--detach", str(path), ref], cwd=ROOT,
                   check=True)  # fmt: skip
    return path


def _run(tree: Path, groups: list[str]) -> dict[str, tuple[float, str]]:
    """One run of the groups on ``tree``'s code: figure -> (value, unit)."""
    paths = [str(tree / "packages" / p) for p in PACKAGES if (tree / "packages" / p).is_dir()]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *paths])}
    done = subprocess.run([sys.executable, "-m", "bench", *groups], cwd=ROOT, env=env,
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"the run on {tree} failed:\n{done.stderr[-3000:]}")
    out = done.stdout
    figures = {}
    for line in out.splitlines():
        if line.startswith("calibration"):
            print(f"    {line}", file=sys.stderr)
        match = _ROW.match(line)
        if match and match["value"] != "-":
            figures[match["name"]] = (float(match["value"].replace(",", "")), match["unit"])
    return figures


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pairs")
    parser.add_argument("before")
    parser.add_argument("after", nargs="?")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--groups", default="sdk,server")
    args = parser.parse_args(argv)
    groups = args.groups.split(",")
    runs: dict[str, list[dict[str, tuple[float, str]]]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"before": _tree(args.before, Path(tmp)), "after": _tree(args.after, Path(tmp))}
        try:
            for round_ in range(args.rounds):
                order = ["before", "after"] if round_ % 2 == 0 else ["after", "before"]
                for side in order:
                    print(f"round {round_ + 1}: {side}", file=sys.stderr, flush=True)
                    runs[side].append(_run(trees[side], groups))
        finally:
            for tree in trees.values():
                if tree != ROOT:
                    subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT)
    print(f"{args.rounds} pairs, {args.before} -> {args.after or 'this checkout'}, "
          f"groups {', '.join(groups)}; medians\n")  # fmt: skip
    print("| figure | unit | before | after | after / before | |\n|---|---|---:|---:|---:|---|")
    for name, (_, unit) in runs["after"][0].items():
        before = [run[name][0] for run in runs["before"] if name in run]
        after = [run[name][0] for run in runs["after"] if name in run]
        if not before or not after:
            continue
        b, a = statistics.median(before), statistics.median(after)
        ratio = a / b if b else float("nan")
        higher_better = unit.endswith(_HIGHER_IS_BETTER)
        worse = ratio < 0.95 if higher_better else ratio > 1.05
        flag = "**worse > 5 %**" if worse else ""
        print(f"| {name} | {unit} | {b:,.1f} | {a:,.1f} | {ratio:.2f} | {flag} |")


if __name__ == "__main__":
    main(sys.argv[1:])
