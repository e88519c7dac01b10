"""`python -m benchmarks [--quick] [--json FILE] [--only NAME ...]`: run the suites, print a
table of figures and ratios, optionally write them as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks.suite import Suite, SuiteResult

# name -> "module:function"; imported lazily so one suite's extra needs do not slow others.
# In this order: the suites that write millions of rows (core's growth, audit) come last.
# PostgreSQL goes on flushing what they wrote (checkpoints, autovacuum) for minutes after, on
# the same disk and cores, and that held back the HTTP suite's service, whose every answer
# waits for a commit, and not its ceiling, which never touches the disk: run after them, the
# service's rates fell by a quarter on PostgreSQL (3,800 -> 2,750/s), less on SQLite.
SUITES: dict[str, str] = {
    "http": "benchmarks.http:run",
    "merchants": "benchmarks.merchants:run",
    "core": "benchmarks.core:run",
    "audit": "benchmarks.audit:run",
}


def _load(target: str) -> Suite:
    import importlib

    module_name, function = target.split(":")
    suite: Suite = getattr(importlib.import_module(module_name), function)
    return suite


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short smoke mode (CI)")
    parser.add_argument("--json", type=Path, help="write {figures, ratios} to this file")
    parser.add_argument("--only", nargs="*", choices=sorted(SUITES), help="run these suites")
    args = parser.parse_args(argv)
    total = SuiteResult()
    for name in args.only or list(SUITES):
        print(f"== {name}", flush=True)
        result = _load(SUITES[name])(args.quick)
        for key, value in result.figures.items():
            print(f"  {key:<48} {value:>14,.1f}")
        for key, value in result.ratios.items():
            print(f"  {key:<48} {value:>14.2f}  (ratio)")
        total.figures.update(result.figures)
        total.ratios.update(result.ratios)
    if args.json:
        args.json.write_text(
            json.dumps({"figures": total.figures, "ratios": total.ratios}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
