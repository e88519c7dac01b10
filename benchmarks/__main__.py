"""`python -m benchmarks [--quick] [--json FILE] [--only NAME ...]`: run the suites, print a
table of figures and ratios, optionally write them as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks.suite import Suite, SuiteResult

# name -> "module:function"; imported lazily so one suite's extra needs do not slow others.
SUITES: dict[str, str] = {
    "core": "benchmarks.core:run",
    "audit": "benchmarks.audit:run",
    "merchants": "benchmarks.merchants:run",
    "http": "benchmarks.http:run",
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
