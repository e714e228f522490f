"""Run the benchmarks: every ``bench/bench_*.py`` ``main()``, or the named ones.

Usage: ``.venv/bin/python bench/run.py [name ...]`` where ``name`` is the
part after ``bench_`` (``scheduler`` runs ``bench/bench_scheduler.py``).
Wall-clock numbers are printed as ratios against a baseline measured in the
same run; nothing here is part of the test suite.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent


def available() -> dict[str, pathlib.Path]:
    return {p.stem.removeprefix("bench_"): p for p in sorted(HERE.glob("bench_*.py"))}


def run_one(name: str, path: pathlib.Path) -> None:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    print(f"== {name} ({path.name})")
    t0 = time.perf_counter()
    mod.main()
    print(f"== {name}: {time.perf_counter() - t0:.1f} s\n")


def main(argv: list[str]) -> int:
    benches = available()
    names = argv or list(benches)
    unknown = [n for n in names if n not in benches]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; available: {sorted(benches)}", file=sys.stderr)
        return 2
    for n in names:
        run_one(n, benches[n])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
