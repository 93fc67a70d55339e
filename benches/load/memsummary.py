#!/usr/bin/env python3
"""Memory and refusals of one rate run (caps, floods), from the engine's
own figures: RUNDIR/metrics.csv (metricsmon.py, every second) and
RUNDIR/metrics.txt (the last scrape, after the idle period).

Usage: memsummary.py RUNDIR
Prints the heap and RSS before the first call, at their peak and at the
end; the most calls in progress at once; and the refusals: calls refused
over [sip.limits] max_calls, requests refused at the door over
max_heap_mb, strangers' datagrams dropped or answered statelessly.
"""
import csv
import os
import re
import sys


def series(path):
    out = {}
    with open(path) as f:
        for r in csv.DictReader(f):
            try:
                out.setdefault(r["metric"], []).append((float(r["t_unix"]), float(r["value"])))
            except (KeyError, ValueError):
                continue
    return out


def scrape_sum(text, name, label_re=""):
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and re.search(label_re, line):
            try:
                total += float(line.rsplit(" ", 1)[1])
            except ValueError:
                pass
    return total


def main():
    rd = sys.argv[1]
    s = series(os.path.join(rd, "metrics.csv"))
    mib = 1 << 20
    parts = []
    for name, key in (("heap", "permanence_memory_heap_bytes"), ("RSS", "permanence_memory_resident_bytes")):
        v = s.get(key) or []
        if v:
            parts.append(f"{name} {v[0][1] / mib:.1f} MB at start, peak {max(x for _, x in v) / mib:.1f} MB, "
                         f"end {v[-1][1] / mib:.1f} MB")
    active = s.get("permanence_active_calls") or []
    if active:
        parts.append(f"most calls in progress {int(max(x for _, x in active))}")
    print("memory: " + "; ".join(parts))
    try:
        text = open(os.path.join(rd, "metrics.txt")).read()
    except OSError:
        return
    print("refused: "
          f"over max_calls {int(scrape_sum(text, 'permanence_sip_rejected_total', 'overload'))}, "
          f"over max_heap_mb {int(scrape_sum(text, 'permanence_sip_stateless_replies_total', 'code=.503'))}; "
          f"strangers: dropped {int(scrape_sum(text, 'permanence_sip_flood_dropped_total'))}, "
          f"challenged statelessly {int(scrape_sum(text, 'permanence_sip_stateless_replies_total', 'code=.40[17]'))}, "
          f"bans {int(scrape_sum(text, 'permanence_sip_bans_total'))}")


if __name__ == "__main__":
    main()
