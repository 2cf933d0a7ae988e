"""genrecast's benchmark suite: ``python -m benchmarks [--quick] [--repeats N] [--only NAME,...]``.

Prints a table (median, p99 where latency matters, target, met) and writes every run's
numbers to ``benchmarks/results.json``. Figures, by name:

  window      per-window features + inference (default path vs the tutorial's path)
  parity      MFCC parity with librosa.feature.mfcc on real clips
  classify    genrecast classify throughput, one core (x real time)
  startup     daemon start to READY=1 on a real NOTIFY_SOCKET
  latency     end of a window's audio to its event on stdout
  steady      one real-time source: CPU, RSS, growth
  concurrent  concurrent real-time HTTP streams with zero dropped windows
  extraction  training feature extraction, all cores (clips/s)
  train       full genrecast train on the synthetic 1000-clip set
  longfile    peak memory of genrecast classify on 20-min and 3-h MP3s (streaming)
  fleet       the fleet's balance: shares of --shard K/N and sources moved when a member joins
  robustness  the default bundle on the 13 clips under capture conditions, next to the tutorial's path
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIGURES = ("window", "parity", "classify", "startup", "latency", "steady", "concurrent", "extraction", "train", "longfile", "fleet", "robustness")


def _module(name: str):
    import importlib

    module = {"startup": "daemon_figures", "latency": "daemon_figures", "steady": "daemon_figures",
              "concurrent": "daemon_figures", "train": "train_figure", "window": "window_latency",
              "classify": "classify_throughput", "longfile": "long_file", "fleet": "fleet_balance"}.get(name, name)
    mod = importlib.import_module(f"benchmarks.{module}")
    return getattr(mod, name) if module == "daemon_figures" else mod.run


def _names(text: str | None) -> list[str]:
    if not text:
        return []
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = sorted(set(names) - set(FIGURES))
    if unknown:
        raise SystemExit(f"unknown figure(s) {unknown}; choose from {', '.join(FIGURES)}")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("GENRECAST_TEST_DATA", REPO.parent / "shared" / "data")),
                        help="Shared test data (gtzan-sample, music/).")
    parser.add_argument("--repeats", type=int, default=3, help="Runs per figure; the median is reported.")
    parser.add_argument("--quick", action="store_true", help="A fast smoke run: fewer windows, clips, sources and seconds.")
    parser.add_argument("--only", help=f"Comma-separated figures to run ({','.join(FIGURES)}).")
    parser.add_argument("--skip", help="Comma-separated figures to leave out.")
    parser.add_argument("--bundle", type=Path, help="An MFCC model bundle to use (default: train one for 1 epoch on gtzan-sample).")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results.json", help="Where to write the results.")
    parser.add_argument("--keep", action="store_true", help="Keep the scratch directory (bundles, logs).")
    args = parser.parse_args(argv)
    os.environ.setdefault("NUMBA_CACHE_DIR", str(REPO / ".cache" / "numba"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from benchmarks.common import Context, row, scratch_dir

    selected = _names(args.only) or list(FIGURES)
    selected = [n for n in selected if n not in _names(args.skip)]
    ctx = Context(data=args.data, repeats=max(1, args.repeats), quick=args.quick, scratch=scratch_dir(), bundle_arg=args.bundle)
    started = time.perf_counter()
    results: list[dict] = []
    try:
        for name in selected:
            t0 = time.perf_counter()
            print(f"[{name}] running ...", file=sys.stderr, flush=True)
            try:
                rows = _module(name)(ctx)
            except Exception as exc:  # one broken figure must not hide the others
                traceback.print_exc()
                first_line = str(exc).splitlines()[0][:200] if str(exc) else ""
                rows = [row(name, name, [], "", met=False, note=f"error: {type(exc).__name__}: {first_line}")]
            for r in rows:
                r["seconds"] = round(time.perf_counter() - t0, 1)
            results += rows
            print(f"[{name}] done in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(ctx.scratch, ignore_errors=True)
    total = time.perf_counter() - started
    print(table(results))
    print(f"\n{len(results)} rows in {total:.0f} s; {sum(r['met'] is True for r in results)} targets met, "
          f"{sum(r['met'] is False for r in results)} missed")
    payload = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
               "quick": args.quick, "repeats": args.repeats, "figures": selected, "seconds": round(total, 1), "results": results}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.json}", file=sys.stderr)
    return 1 if any(r["note"].startswith("error:") for r in results) else 0


def _fmt(value) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    if value == 0:
        return "0"
    return f"{value:.3g}"


def table(results: list[dict]) -> str:
    head = ("figure", "median", "p99", "unit", "target", "met")
    lines = [[r["figure"], _fmt(r["median"]), _fmt(r.get("p99")), r["unit"], r["target"] or "",
              {True: "yes", False: "NO", None: ""}[r["met"]]] for r in results]
    widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(head)]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    for line, r in zip(lines, results):
        out.append("  ".join(c.ljust(w) if i in (0, 3, 4) else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))))
        if r["note"]:
            out.append("    " + r["note"])
    return "\n".join(out)


def machine() -> dict:
    model = ""
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "machine": platform.machine(), "python": platform.python_version(),
            "kernel": platform.release()}


if __name__ == "__main__":
    raise SystemExit(main())
