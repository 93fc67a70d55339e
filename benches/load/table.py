#!/usr/bin/env python3
"""Markdown table rows from run directories written by run.sh (their
summary.json): one row per run, rate runs and media runs separately.

Usage: table.py RUN_DIR_OR_OUT_DIR...
"""
import json
import os
import sys


def runs(paths):
    for p in paths:
        if os.path.exists(os.path.join(p, "summary.json")):
            yield p
        elif os.path.isdir(p):
            for d in sorted(os.listdir(p)):
                q = os.path.join(p, d)
                if os.path.exists(os.path.join(q, "summary.json")):
                    yield q


def g(d, *ks):
    for k in ks:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def main():
    rate_rows, media_rows, cmp_rows = [], [], []
    any_webrtc = False
    for rd in runs(sys.argv[1:]):
        s = json.load(open(os.path.join(rd, "summary.json")))
        m = s["meta"]
        if m["mode"] == "rate":
            cpu = s.get("cpu_steady", {})
            lat = s["latency"]
            rss = s.get("engine_rss_kb", {})
            rate_rows.append((m["rate"], m["hold_ms"],
                f"| {m['rate']} | {m['duration_s']} s | {m['hold_ms']} ms | {m['agents']} "
                f"| {s['carrier']['successful']}/{s['carrier']['created']} | {s['carrier']['failed']} "
                f"| {s['carrier']['retransmissions']} "
                f"| {g(lat, 'invite_to_agent_invite', 'p50_ms')} / {g(lat, 'invite_to_agent_invite', 'p99_ms')} "
                f"| {g(lat, 'invite_to_200_at_carrier', 'p50_ms')} / {g(lat, 'invite_to_200_at_carrier', 'p99_ms')} "
                f"| {g(cpu, 'engine', 'cores')} | {s.get('engine_cpu_ms_per_call')} "
                f"| {g(cpu, 'sipp_carrier', 'cores')} + {g(cpu, 'sipp_agent', 'cores')} "
                f"| {g(cpu, 'other_processes_on_machine', 'cores')} "
                f"| {round((rss.get('peak') or 0) / 1024)} MB "
                f"| {g(s, 'udp_queues_steady', 'engine_sip', 'drops')} |"
            ))
        if m["mode"] in ("media", "webrtc"):
            any_webrtc |= m["mode"] == "webrtc"
            cmp_rows.append((m["calls"], m["mode"] == "webrtc", compare_row(s)))
        if m["mode"] != "rate":
            rt = s.get("rtp") or {}
            cpu = s.get("cpu_window", {})
            rss = s.get("engine_rss_kb", {})
            c2a, a2c = rt.get("caller_to_agent", {}), rt.get("agent_to_caller", {})
            media_rows.append((m["calls"], 0,
                f"| {m['calls']} | {rt.get('window_s')} s "
                f"| {rt.get('pps_sent_by_endpoints')} / {rt.get('pps_received_by_endpoints')} "
                f"| {c2a.get('lost')} / {a2c.get('lost')} (of {c2a.get('sent')} / {a2c.get('sent')}) "
                f"| {g(c2a, 'latency_us', 'p50')} / {g(c2a, 'latency_us', 'p99')} / {g(c2a, 'latency_us', 'max')} "
                f"| {g(cpu, 'engine', 'cores')} | {s.get('engine_cpu_us_per_packet_relayed')} "
                f"| {g(cpu, 'rtpload', 'cores') or g(cpu, 'webrtc_agents', 'cores')} | {g(cpu, 'other_processes_on_machine', 'cores')} "
                f"| {round((rss.get('idle_registered') or 0) / 1024)} → {round((rss.get('window_mid') or 0) / 1024)} MB "
                f"| {rss.get('per_call_kb')} kB |"
            ))
    if rate_rows:
        print("| calls/s | duration | hold | agents | carrier ok | failed | retrans "
              "| INVITE→agent INVITE p50 / p99 (ms) | INVITE→200 p50 / p99 (ms) | engine cores "
              "| engine CPU ms/call | SIPp cores (carrier + agent) | other processes | engine RSS peak "
              "| SIP socket drops |")
        print("|" + "---:|" * 15)
        print("\n".join(r for *_, r in sorted(rate_rows)))
    if media_rows:
        print()
        print("| bridged calls | window | packets/s into / out of the engine | lost c→a / a→c "
              "| relay latency p50 / p99 / max (µs) | engine cores | engine CPU µs/relayed packet "
              "| rtpload cores | other processes | engine RSS (idle → window) | RSS per call |")
        print("|" + "---:|" * 11)
        print("\n".join(r for *_, r in sorted(media_rows)))
    if any_webrtc:
        print()
        print("| bridged calls | agents | carrier ok | loss c→a / a→c | latency c→a p50 / p99 (µs) "
              "| latency a→c p50 / p99 (µs) | engine cores | engine % of a core per call "
              "| engine heap per call (KiB, steady) | engine RSS per call (KiB, steady) "
              "| load client cores | other processes (cores) |")
        print("|---:|---|" + "---:|" * 10)
        print("\n".join(r for *_, r in sorted(cmp_rows)))


def compare_row(s):
    """One row of the plain RTP bridge vs WebRTC agents table."""
    m = s["meta"]
    rt = s.get("rtp") or {}
    cpu = s.get("cpu_window", {})
    fp = s.get("footprint") or {}
    c2a, a2c = rt.get("caller_to_agent", {}), rt.get("agent_to_caller", {})
    client = "rtpload" if m["mode"] == "media" else "webrtc_agents"
    kind = "SIPp UDP + RTP" if m["mode"] == "media" else "browser (WS + WebRTC)"
    return (f"| {m['calls']} | {kind} | {g(s, 'carrier', 'successful')}/{g(s, 'carrier', 'created')} "
            f"| {c2a.get('loss_pct')} % / {a2c.get('loss_pct')} % "
            f"| {g(c2a, 'latency_us', 'p50')} / {g(c2a, 'latency_us', 'p99')} "
            f"| {g(a2c, 'latency_us', 'p50')} / {g(a2c, 'latency_us', 'p99')} "
            f"| {g(cpu, 'engine', 'cores')} | {s.get('engine_cpu_per_call_pct_of_core')} "
            f"| {fp.get('heap_steady_per_call_kib', fp.get('heap_early_per_call_kib'))} "
            f"| {fp.get('rss_steady_per_call_kib', fp.get('rss_early_per_call_kib'))} "
            f"| {g(cpu, client, 'cores')} | {g(cpu, 'other_processes_on_machine', 'cores')} |")


if __name__ == "__main__":
    main()
