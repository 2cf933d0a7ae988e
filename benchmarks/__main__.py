"""Run every benchmark: ``python -m benchmarks [--repeats N] [--json OUT]``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("GENRECAST_TEST_DATA", REPO.parent / "shared" / "data")))
    parser.add_argument("--repeats", type=int, default=3, help="Runs per figure; the median is reported.")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results.json", help="Where to write the results.")
    args = parser.parse_args()
    os.environ.setdefault("NUMBA_CACHE_DIR", str(REPO / ".cache" / "numba"))
    from benchmarks import extraction, window_latency

    results = []
    results += extraction.run(args.data, args.repeats)
    results += window_latency.run(args.data, args.repeats)
    width = max(len(r["figure"]) for r in results)
    print(f"{'figure':<{width}}  {'median':>12}  unit")
    for r in results:
        print(f"{r['figure']:<{width}}  {r['median']:>12.3f}  {r['unit']}")
    args.json.write_text(json.dumps({"machine": machine(), "results": results}, indent=2) + "\n")
    print(f"wrote {args.json}", file=sys.stderr)
    return 0


def machine() -> dict:
    import platform

    return {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(), "processor": platform.processor()}


if __name__ == "__main__":
    raise SystemExit(main())
