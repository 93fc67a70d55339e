#!/usr/bin/env python3
"""Summarises one load run directory written by run.sh (meta.json, SIPp
statistics and logs, procmon.csv, rtpload.json) into summary.json and a
few human-readable lines on stdout.

Usage: analyze.py RUNDIR
"""
import json
import os
import sys


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    i = min(len(xs) - 1, max(0, int(round(p * len(xs) + 0.5)) - 1))
    return xs[i]


def sipp_stats(path):
    """Last line of a SIPp -trace_stat CSV as a dict (cumulative counters)."""
    if not os.path.exists(path):
        return {}
    with open(path, errors="replace") as f:
        lines = [l.rstrip("\n") for l in f if l.strip()]
    if len(lines) < 2:
        return {}
    hdr = lines[0].split(";")
    last = lines[-1].split(";")
    d = dict(zip(hdr, last))
    keep = {}
    for k, v in d.items():
        if k.endswith("(C)") or k in ("CurrentCall", "ElapsedTime(C)"):
            try:
                keep[k] = int(v)
            except ValueError:
                keep[k] = v
    return keep


def failures(st):
    return {k: v for k, v in st.items() if k.startswith("Failed") and isinstance(v, int) and v}


def read_logs(path, tag):
    out = []
    if not os.path.exists(path):
        return out
    with open(path, errors="replace") as f:
        for line in f:
            p = line.split()
            if p and p[0] == tag:
                out.append(p)
    return out


def ts(s, us):
    return float(s) + float(us) / 1e6


def latencies(rd):
    """Per-call latencies from the SIPp trace logs, and the number of log
    lines that could not be read (SIPp occasionally writes a line with an
    empty field under load: such a call has no latency sample, it is not
    a failure; failures come from SIPp's own counters)."""
    sent = {}
    answered = {}
    malformed = 0
    for p in read_logs(os.path.join(rd, "carrier_logs.log"), "C"):
        try:
            n = p[1]
            t = ts(p[2], p[3])
            answered[n] = ts(p[4], p[5]) - t
            sent[n] = t
        except (IndexError, ValueError):
            malformed += 1
    ring = {}
    for p in read_logs(os.path.join(rd, "agent_logs.log"), "A"):
        try:
            frm = p[1]
            if frm.startswith("336"):
                n = frm[3:]
                if n in sent:
                    ring[n] = ts(p[2], p[3]) - sent[n]
        except (IndexError, ValueError):
            malformed += 1
    return sent, answered, ring, malformed


def summarize(xs, scale=1000.0):
    if not xs:
        return None
    return {
        "n": len(xs),
        "p50_ms": round(pct(xs, 0.5) * scale, 3),
        "p90_ms": round(pct(xs, 0.9) * scale, 3),
        "p99_ms": round(pct(xs, 0.99) * scale, 3),
        "max_ms": round(max(xs) * scale, 3),
    }


def procmon(path):
    procs = {}
    udp = []
    if not os.path.exists(path):
        return procs, udp
    with open(path) as f:
        for line in f:
            p = line.strip().split(",")
            if len(p) < 4:
                continue
            t = float(p[0])
            if p[1] == "udp":
                udp.append((t, [int(x) for x in p[3:]]))
            elif p[1].startswith("udpq:"):
                procs.setdefault(p[1], []).append((t, int(p[4]), int(p[5]), int(p[6]), int(p[3])))
            elif p[1] == "machine":
                procs.setdefault("machine_all_processes", []).append((t, float(p[3]), 0, 0))
            else:
                procs.setdefault(p[1], []).append((t, float(p[3]), int(p[6]), int(p[7])))
    return procs, udp


def at(samples, t):
    """Sample closest to time t."""
    if not samples:
        return None
    return min(samples, key=lambda s: abs(s[0] - t))


def cpu_between(samples, t0, t1):
    a, b = at(samples, t0), at(samples, t1)
    if not a or not b or b[0] <= a[0]:
        return None
    return {"cpu_s": round(b[1] - a[1], 2), "wall_s": round(b[0] - a[0], 2), "cores": round((b[1] - a[1]) / (b[0] - a[0]), 3)}


def queues(procs, t0, t1):
    """Socket receive queues during [t0, t1]: mean/max of the summed bytes
    waiting, max of one socket, and drops (delta)."""
    out = {}
    for k, v in procs.items():
        if not k.startswith("udpq:"):
            continue
        w = [s for s in v if t0 <= s[0] <= t1]
        if not w:
            continue
        a, b = at(v, t0), at(v, t1)
        out[k[5:]] = {
            "sockets": max(s[4] for s in w),
            "queued_bytes_mean": round(sum(s[1] for s in w) / len(w)),
            "queued_bytes_max": max(s[1] for s in w),
            "one_socket_max_bytes": max(s[2] for s in w),
            "drops": b[3] - a[3],
        }
    return out


def cpu_of(procs, t0, t1):
    res = {k: cpu_between(v, t0, t1) for k, v in procs.items() if not k.startswith("udpq:")}
    ours = sum((x or {}).get("cores", 0) for k, x in res.items() if k != "machine_all_processes")
    # The monitors themselves: one line, summed.
    mon = [k for k in res if k.startswith("procmon_")]
    if mon:
        res["monitors"] = {"cores": round(sum((res[k] or {}).get("cores", 0) for k in mon), 3)}
        for k in mon:
            del res[k]
    m = res.get("machine_all_processes")
    if m:
        # Approximate: the machine-wide and per-process counters are read
        # at slightly different instants; small negative values mean ~0.
        res["other_processes_on_machine"] = {"cores": round(max(0.0, m["cores"] - ours), 3)}
    return res


def main():
    rd = sys.argv[1]
    meta = json.load(open(os.path.join(rd, "meta.json")))
    res = {"meta": meta}
    procs, udp = procmon(os.path.join(rd, "procmon.csv"))
    car = sipp_stats(os.path.join(rd, "carrier_stat.csv"))
    agt = sipp_stats(os.path.join(rd, "agent_stat.csv"))
    res["carrier"] = {
        "created": car.get("OutgoingCall(C)"),
        "successful": car.get("SuccessfulCall(C)"),
        "failed": car.get("FailedCall(C)"),
        "retransmissions": car.get("Retransmissions(C)"),
        "failures": failures(car),
    }
    res["agent"] = {
        "incoming": agt.get("IncomingCall(C)"),
        "successful": agt.get("SuccessfulCall(C)"),
        "failed": agt.get("FailedCall(C)"),
        "retransmissions": agt.get("Retransmissions(C)"),
        "failures": failures(agt),
    }
    sent, answered, ring, malformed = latencies(rd)
    res["latency"] = {
        "invite_to_agent_invite": summarize(list(ring.values())),
        "invite_to_200_at_carrier": summarize(list(answered.values())),
        "unreadable_log_lines": malformed,
    }
    # Latency by 10 s slice of the run (saturation shows as a drift).
    if ring and sent:
        t0 = min(sent.values())
        slices = {}
        for n, v in ring.items():
            slices.setdefault(int((sent[n] - t0) // 10), []).append(v)
        res["latency"]["agent_invite_p99_ms_by_10s"] = [
            round(pct(slices[k], 0.99) * 1000, 2) for k in sorted(slices)
        ]
    # Engine log: warnings/errors (RUST_LOG=warn).
    wl = 0
    kinds = {}
    elog = os.path.join(rd, "engine.log")
    if os.path.exists(elog):
        with open(elog, errors="replace") as f:
            for line in f:
                if '"level":"WARN"' in line or '"level":"ERROR"' in line:
                    wl += 1
                    try:
                        m = json.loads(line).get("message", "")
                    except ValueError:
                        m = line[:80]
                    kinds[m] = kinds.get(m, 0) + 1
    ex = os.path.join(rd, "engine_exit")
    res["engine_exit"] = open(ex).read().strip().replace("\n", " ") if os.path.exists(ex) else None
    res["engine_log"] = {"warn_or_error_lines": wl, "messages": dict(sorted(kinds.items(), key=lambda kv: -kv[1])[:10])}

    # Call records written by the engine (SQLite) and a few metrics.
    db = os.path.join(rd, "records.sqlite")
    if os.path.exists(db):
        try:
            import sqlite3
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            res["records_calls"] = con.execute("select count(*) from calls").fetchone()[0]
            res["records_queue_events"] = con.execute("select count(*) from queue_events").fetchone()[0]
            con.close()
        except Exception as ex:  # noqa: BLE001
            res["records_error"] = str(ex)
    mt = os.path.join(rd, "metrics.txt")
    if os.path.exists(mt):
        keep = {}
        for line in open(mt, errors="replace"):
            if line.startswith("#") or not line.strip():
                continue
            name, _, val = line.rpartition(" ")
            if any(w in name for w in ("calls_total", "dropped", "rtp", "offers", "answered", "abandoned")):
                try:
                    keep[name] = float(val)
                except ValueError:
                    pass
        res["metrics"] = dict(list(keep.items())[:40])

    mode = meta["mode"]
    if mode == "rate":
        # Steady window: from (start + hold + 2 s) to the end of sending.
        t0 = meta["t_carrier_start"] + meta["hold_ms"] / 1000.0 + 2
        t1 = meta["t_carrier_start"] + meta["duration_s"]
        if t1 <= t0 + 1:
            t0 = meta["t_carrier_start"]
        res["cpu_steady"] = cpu_of(procs, t0, t1)
        res["udp_queues_steady"] = queues(procs, t0, t1)
        e = procs.get("engine", [])
        if e:
            res["engine_rss_kb"] = {
                "idle": at(e, meta["t_carrier_start"])[2],
                "peak": max(s[2] for s in e),
                "at_last_call": at(e, meta["t_carrier_end"])[2],
                "end_after_idle": e[-1][2],
            }
            res["engine_threads"] = max(s[3] for s in e)
        cps = meta["rate"]
        eng = (res["cpu_steady"].get("engine") or {}).get("cores")
        if eng:
            res["engine_cpu_ms_per_call"] = round(eng * 1000 / cps, 3)
        created = res["carrier"]["created"] or 0
        ok = (
            created == meta["calls"]
            and res["carrier"]["successful"] == created
            and res["agent"]["successful"] == created
            and not res["carrier"]["failed"]
            and not res["agent"]["failed"]
            and (res["engine_exit"] or "").startswith("alive")
        )
        res["zero_failed_calls"] = bool(ok)
    else:
        # media mode: rtpload.json; webrtc mode: webrtc_agents.json (the
        # same report, plus the browser agents' SIP counters, and a last
        # "final" line written when the client stops).
        rp = os.path.join(rd, "rtpload.json")
        if not os.path.exists(rp):
            rp = os.path.join(rd, "webrtc_agents.json")
        rt = None
        final = None
        if os.path.exists(rp):
            with open(rp) as f:
                for line in f:
                    line = line.strip()
                    try:
                        if line.startswith("{") and "window_s" in line:
                            rt = json.loads(line)
                        elif line.startswith("{") and '"final"' in line:
                            final = json.loads(line)
                    except ValueError:
                        pass
        res["rtp"] = rt
        fpath = os.path.join(rd, "footprint.json")
        if os.path.exists(fpath):
            try:
                res["footprint"] = json.load(open(fpath))
            except ValueError:
                pass
        e = procs.get("engine", [])
        if rt and e:
            w0, w1 = rt["window_start_unix"], rt["window_end_unix"]
            res["cpu_window"] = cpu_of(procs, w0, w1)
            res["udp_queues_window"] = queues(procs, w0, w1)
            idle = at(e, meta["t_carrier_start"])[2]
            mid = at(e, (w0 + w1) / 2)[2]
            n = meta["calls"]
            res["engine_rss_kb"] = {
                "idle_registered": idle,
                "window_mid": mid,
                "peak": max(s[2] for s in e),
                "end_after_idle": e[-1][2],
                "per_call_kb": round((mid - idle) / n, 1),
            }
            res["engine_threads"] = max(s[3] for s in e)
            cl = procs.get("webrtc_agents", [])
            if cl:
                res["client"] = {
                    "cores_in_window": (res["cpu_window"].get("webrtc_agents") or {}).get("cores"),
                    "rss_kb_window_mid": at(cl, (w0 + w1) / 2)[2],
                    "threads": max(s[3] for s in cl),
                    "sip_at_end": (final or {}).get("sip"),
                    "peer_answer_ms": rt.get("peer_answer_ms"),
                    "peer_connected_ms": rt.get("peer_connected_ms"),
                }
            eng = res["cpu_window"].get("engine") or {}
            if eng.get("cores") is not None:
                res["engine_cpu_per_call_pct_of_core"] = round(100 * eng["cores"] / n, 4)
                pps = rt["pps_sent_by_endpoints"] + rt["pps_received_by_endpoints"]
                if pps:
                    res["engine_cpu_us_per_packet_relayed"] = round(eng["cores"] * 1e6 / (pps / 2), 2)
            if udp:
                a, b = at(udp, w0), at(udp, w1)
                if a and b:
                    d = [y - x for x, y in zip(a[1], b[1])]
                    res["kernel_udp_in_window"] = dict(zip(("InDatagrams", "OutDatagrams", "RcvbufErrors", "SndbufErrors", "InErrors", "NoPorts"), d))
        if rt:
            res["zero_loss"] = (
                rt["caller_to_agent"]["lost"] == 0
                and rt["agent_to_caller"]["lost"] == 0
                and rt["established"]
                and (res["engine_exit"] or "").startswith("alive")
            )
    with open(os.path.join(rd, "summary.json"), "w") as f:
        json.dump(res, f, indent=2)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
