#!/usr/bin/env python3
"""Scrapes the engine's Prometheus /metrics every --interval seconds until
SIGTERM (or --seconds) and writes the samples that the soak benchmark
follows, one CSV line each:
  t_unix,metric,value
metric is the family name, with its labels when the family has several
series (permanence_agents{state="available"}). Families followed:
  permanence_active_calls, permanence_queue_waiting (summed over
  practices), permanence_agents (per state), permanence_registered_contacts,
  permanence_records_backlog, permanence_calls_*_total (summed),
  permanence_sip_retransmissions_total, permanence_rtp_packets_total (per
  direction), and every permanence_memory_* family (for example
  permanence_memory_heap_bytes and permanence_memory_resident_bytes, when
  the engine exports them: absent families are simply not written).
Each scrape also writes `scrape_ms` (time to fetch and parse) and, when
the scrape fails, `scrape_error` = 1.
Usage: metricsmon.py OUT.csv --url URL [--interval 5] [--seconds S]
"""
import argparse
import re
import signal
import time
import urllib.request

SUMMED = (
    "permanence_queue_waiting",
    "permanence_calls_offered_total",
    "permanence_calls_answered_total",
    "permanence_calls_abandoned_total",
    "permanence_calls_overflowed_total",
    "permanence_calls_closed_total",
)
SINGLE = (
    "permanence_active_calls",
    "permanence_registered_contacts",
    "permanence_records_backlog",
    "permanence_records_dropped_total",
    "permanence_sip_retransmissions_total",
)
PER_LABEL = ("permanence_agents", "permanence_rtp_packets_total")
LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def parse(text):
    out = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        m = LINE.match(line)
        if not m:
            continue
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        try:
            v = float(value)
        except ValueError:
            continue
        if name in SUMMED:
            out[name] = out.get(name, 0.0) + v
        elif name in SINGLE:
            out[name] = v
        elif name in PER_LABEL or name.startswith("permanence_memory_"):
            out[name + labels] = v
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--url", required=True)
    ap.add_argument("--interval", type=float, default=5.0)
    ap.add_argument("--seconds", type=float, default=86400.0)
    a = ap.parse_args()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    end = time.time() + a.seconds
    with open(a.out, "w", buffering=1) as f:
        f.write("t_unix,metric,value\n")
        while not stop and time.time() < end:
            t = time.time()
            try:
                body = urllib.request.urlopen(a.url, timeout=min(10.0, a.interval * 2)).read()
                vals = parse(body.decode("utf-8", "replace"))
                dt = (time.time() - t) * 1000
                for k, v in sorted(vals.items()):
                    # Labels may hold commas: quote the field.
                    k = '"' + k.replace('"', '""') + '"' if ("," in k or '"' in k) else k
                    f.write(f"{t:.3f},{k},{v:g}\n")
                f.write(f"{t:.3f},scrape_ms,{dt:.1f}\n")
            except Exception:  # noqa: BLE001 - any failure is recorded, the loop goes on
                f.write(f"{t:.3f},scrape_error,1\n")
            while not stop and time.time() < t + a.interval:
                time.sleep(min(0.5, t + a.interval - time.time() + 0.001))


if __name__ == "__main__":
    main()
