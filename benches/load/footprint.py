#!/usr/bin/env python3
"""Memory per call from a run's metrics.csv (written by metricsmon.py).

Usage: footprint.py RUNDIR --calls N --kind queued|bridged

Reads RUNDIR/meta.json (t_carrier_start) and RUNDIR/metrics.csv, and
compares the engine's own gauges:
  * baseline: the last sample before the carrier's first call;
  * with the calls: the samples where permanence_active_calls >= N (all the
    calls set up, none ended yet; for queued calls also
    permanence_queue_waiting >= N), median, split in two: "early", within
    35 s of the moment all calls were up (each call's INVITE transaction
    and its task are still kept by rsipstack: Timer L, 64 x T1 = 32 s
    after the 200), and "steady", later (what a call costs for the rest
    of its life; needs --measure above 35 s);
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
    t_up = full[0]["t"]
    early = [r for r in full if r["t"] < t_up + 35]
    steady = [r for r in full if r["t"] >= t_up + 35]
    out["samples_early"], out["samples_steady"] = len(early), len(steady)
    mib = 1 << 20
    for g, name in ((HEAP, "heap"), (RSS, "rss")):
        out[f"{name}_baseline_mb"] = round(base[g] / mib, 1)
        out[f"{name}_after_mb"] = round(last[g] / mib, 1)
        for part, rs in (("early", early), ("steady", steady)):
            if not rs:
                continue
            with_calls = statistics.median(r[g] for r in rs)
            out[f"{name}_{part}_mb"] = round(with_calls / mib, 1)
            out[f"{name}_{part}_per_call_kib"] = round((with_calls - base[g]) / a.calls / 1024, 1)
    json.dump(out, open(os.path.join(a.rundir, "footprint.json"), "w"), indent=1)

    def part(name, p):
        if f"{name}_{p}_mb" not in out:
            return f"{p}: no sample"
        return f"{p} {out[f'{name}_{p}_mb']} MB = {out[f'{name}_{p}_per_call_kib']} KiB per call"
    for name in ("heap", "rss"):
        print(f"footprint ({a.kind}, {a.calls} calls) {name}: baseline {out[f'{name}_baseline_mb']} MB; "
              f"{part(name, 'early')}; {part(name, 'steady')}; after the calls {out[f'{name}_after_mb']} MB")


if __name__ == "__main__":
    main()
