#!/usr/bin/env python3
"""Memory per call from a run's metrics.csv (written by metricsmon.py).

Usage: footprint.py RUNDIR --calls N --kind queued|bridged

Reads RUNDIR/meta.json (t_carrier_start) and RUNDIR/metrics.csv, and
compares the engine's own gauges:
  * baseline: the last sample before the carrier's first call;
  * with the calls: the samples where permanence_active_calls >= N (all the
    calls set up, none ended yet; for queued calls also
    permanence_queue_waiting >= N), median;
  * after: the last sample (the calls ended, --idle-after seconds later).
permanence_memory_heap_bytes is exact (the engine's counting allocator:
bytes allocated and not freed); permanence_memory_resident_bytes is the RSS
(allocator pages included). Per call = (with - baseline) / N.
Writes RUNDIR/footprint.json and prints one line.
"""
import argparse
import csv
import json
import os
import statistics
import sys

HEAP = "permanence_memory_heap_bytes"
RSS = "permanence_memory_resident_bytes"
ACTIVE = "permanence_active_calls"
WAITING = "permanence_queue_waiting"


def samples(path):
    """{t: {metric: value}} from metricsmon's long CSV."""
    rows = {}
    with open(path) as f:
        for r in csv.DictReader(f):
            try:
                rows.setdefault(float(r["t_unix"]), {})[r["metric"]] = float(r["value"])
            except (KeyError, ValueError):
                continue
    return [rows[t] | {"t": t} for t in sorted(rows)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rundir")
    ap.add_argument("--calls", type=int, required=True)
    ap.add_argument("--kind", choices=["queued", "bridged"], required=True)
    a = ap.parse_args()
    meta = json.load(open(os.path.join(a.rundir, "meta.json")))
    t0 = float(meta["t_carrier_start"])
    rows = [r for r in samples(os.path.join(a.rundir, "metrics.csv")) if HEAP in r and RSS in r]
    before = [r for r in rows if r["t"] < t0]
    full = [r for r in rows if r.get(ACTIVE, 0) >= a.calls
            and (a.kind == "bridged" or r.get(WAITING, 0) >= a.calls)]
    out = {"kind": a.kind, "calls": a.calls, "samples_with_all_calls": len(full)}
    if not before or not full:
        out["error"] = "no baseline sample" if not before else f"never {a.calls} calls at once"
        print(json.dumps(out))
        json.dump(out, open(os.path.join(a.rundir, "footprint.json"), "w"), indent=1)
        sys.exit(1)
    base, last = before[-1], rows[-1]
    mib = 1 << 20
    for g, name in ((HEAP, "heap"), (RSS, "rss")):
        with_calls = statistics.median(r[g] for r in full)
        out[f"{name}_baseline_mb"] = round(base[g] / mib, 1)
        out[f"{name}_with_calls_mb"] = round(with_calls / mib, 1)
        out[f"{name}_after_mb"] = round(last[g] / mib, 1)
        out[f"{name}_per_call_kib"] = round((with_calls - base[g]) / a.calls / 1024, 1)
    json.dump(out, open(os.path.join(a.rundir, "footprint.json"), "w"), indent=1)
    print(f"footprint ({a.kind}, {a.calls} calls): heap {out['heap_baseline_mb']} -> "
          f"{out['heap_with_calls_mb']} MB = {out['heap_per_call_kib']} KiB per call "
          f"(after: {out['heap_after_mb']} MB); RSS {out['rss_baseline_mb']} -> "
          f"{out['rss_with_calls_mb']} MB = {out['rss_per_call_kib']} KiB per call "
          f"(after: {out['rss_after_mb']} MB)")


if __name__ == "__main__":
    main()
