#!/usr/bin/env python3
"""Summarises a soak run directory written by `run.sh soak` into
summary.json and a printed table, and says PASS or FAIL (exit status 0 or 1).

Inputs (all in RUNDIR): meta.json, phases.csv (phase,index,t_start,t_end:
baseline, load, drain, idle, final_idle), procmon.csv (engine RSS every
second), metrics.csv (metricsmon.py: permanence_active_calls and, when the
engine exports them, permanence_memory_* gauges), carrier_<k>_stat.csv (one
SIPp carrier per load phase) and agent_stat.csv (SIPp -trace_stat, with the
scenario counters), records.sqlite (the engine's call records), engine.log,
engine_exit.

Figures:
* baseline: median engine RSS over the last 10 s of the baseline phase
  (engine started, every agent registered, SIPp agent up, no call yet);
* per load phase: plateau = median RSS over the last third of the phase
  (the carrier still sending new calls), mean active calls
  (permanence_active_calls) over the same window, memory per active call
  = (plateau - baseline) / mean active calls; the highest RSS of the phase
  and its drain; RSS at the end of the idle that follows (median of its
  last 5 s);
* final idle: RSS at the end of the final idle (median of its last 5 s);
* the same for each permanence_memory_* gauge when present;
* outcomes: the carrier's and the agent's scenario counters, and the
  engine's call records (outcome and end reason, by the patient's scripted
  kind, which is in the caller number +336<kind>...);
* failed calls: SIPp failed calls on either side (unexpected message,
  timeout, retransmissions exhausted, ...), carrier calls never created or
  never completed, agent calls still open at the end, and engine records
  with an outcome no script asks for (failed, overflowed, still in
  progress, media timeout, or an end that contradicts the script).
  Scripted abandons and hang-ups are not failures.

PASS when all of:
* zero failed calls and the engine alive at the end;
* plateau: the last load phase's plateau is at most --plateau-tolerance
  percent (meta plateau_tolerance_pct, default 5) above the first phase's,
  and within the last phase the median of its last third is at most that
  much above the median of its middle third (growth inside a phase);
* RSS at the end of the final idle at most --idle-tolerance-mb (meta
  idle_tolerance_mb, default 64) MB above the baseline.

Usage: soak.py RUNDIR
"""
import csv
import json
import os
import statistics
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from analyze import cpu_of, failures, procmon, sipp_stats  # noqa: E402

MB = 1024.0  # procmon RSS is in kB

EXPECTED = {
    "1": {"abandoned-greeting", "abandoned-triage"},
    "2": {"abandoned-queue", "abandoned-ringing"},
    "3": {"agent-hangup"},
    "4": {"caller-hangup"},
}
# A kind-4 patient (hangs up 5-10 s after being queued) whose wait was
# longer than that abandons instead: the mix drifts, nothing failed.
DRIFT = {"4": {"abandoned-queue", "abandoned-ringing"}}
KIND_NAMES = {
    "1": "hang-up in greeting/triage",
    "2": "abandon in queue",
    "3": "answered, agent hangs up",
    "4": "answered, patient hangs up",
}


def median(xs):
    return statistics.median(xs) if xs else None


def mean(xs):
    return sum(xs) / len(xs) if xs else None


def rnd(x, n=1):
    return None if x is None else round(x, n)


def window(series, a, b):
    return [v for t, v in series if a <= t <= b]


def read_phases(rd):
    ph = []
    with open(os.path.join(rd, "phases.csv")) as f:
        for line in f:
            p = line.strip().split(",")
            if len(p) == 4:
                ph.append((p[0], int(p[1]), float(p[2]), float(p[3])))
    return ph


def read_metrics(rd):
    """{metric: [(t, value)]} from metrics.csv."""
    out = {}
    errors = 0
    path = os.path.join(rd, "metrics.csv")
    if not os.path.exists(path):
        return out, errors
    with open(path, newline="") as f:
        r = csv.reader(f)
        next(r, None)
        for row in r:
            if len(row) != 3:
                continue
            try:
                t, v = float(row[0]), float(row[2])
            except ValueError:
                continue
            if row[1] == "scrape_error":
                errors += 1
                continue
            out.setdefault(row[1], []).append((t, v))
    return out, errors


def stat_counts(path):
    """Cumulative SIPp counters from the last line of a -trace_stat CSV:
    the standard (C) columns and the scenario's own counters."""
    st = sipp_stats(path)
    return st


def sipp_side(st, counters):
    return {
        "incoming": st.get("IncomingCall(C)"),
        "outgoing": st.get("OutgoingCall(C)"),
        "successful": st.get("SuccessfulCall(C)"),
        "failed": st.get("FailedCall(C)"),
        "still_open": st.get("CurrentCall"),
        "retransmissions": st.get("Retransmissions(C)"),
        "dead_call_msgs": st.get("DeadCallMsgs(C)"),
        "out_of_call_msgs": st.get("OutOfCallMsgs(C)"),
        "failures": failures(st),
        "counters": {c: st.get(f"{c}(C)", 0) for c in counters},
    }


def records_health(rd, metrics):
    """Records store health at the end: rows dropped, write failures,
    healthy flag (metrics.txt, the last scrape, else metrics.csv)."""
    vals = {}
    path = os.path.join(rd, "metrics.txt")
    if os.path.exists(path):
        for line in open(path, errors="replace"):
            p = line.split()
            if len(p) == 2 and p[0] in ("permanence_records_dropped_total", "permanence_records_healthy",
                                        "permanence_records_write_failures_total", "permanence_records_backlog"):
                vals[p[0]] = float(p[1])
    for k in ("permanence_records_dropped_total", "permanence_records_backlog"):
        if k not in vals and metrics.get(k):
            vals[k] = metrics[k][-1][1]
    return {k.replace("permanence_records_", ""): int(v) for k, v in vals.items()}


def records(rd):
    db = os.path.join(rd, "records.sqlite")
    if not os.path.exists(db):
        return None
    import sqlite3

    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    rows = con.execute(
        "SELECT substr(caller, 5, 1), outcome, coalesce(end_reason, ''), count(*), "
        "avg(wait_secs), avg(talk_secs) FROM calls GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    ).fetchall()
    practices = con.execute(
        "SELECT practice_id, coalesce(end_reason, ''), count(*) FROM calls GROUP BY 1, 2 ORDER BY 1, 2"
    ).fetchall()
    triage = con.execute(
        "SELECT coalesce(triage_digit, '-'), count(*) FROM calls GROUP BY 1 ORDER BY 1"
    ).fetchall()
    con.close()
    by_kind = {}
    unexpected = {}
    drift = 0
    outcomes = {}
    reasons = {}
    total = 0
    for kind, outcome, reason, n, wait, talk in rows:
        total += n
        outcomes[outcome] = outcomes.get(outcome, 0) + n
        reasons[reason] = reasons.get(reason, 0) + n
        k = by_kind.setdefault(kind, {})
        k[reason] = {"calls": n, "outcome": outcome, "mean_wait_s": rnd(wait, 2), "mean_talk_s": rnd(talk, 2)}
        if reason in EXPECTED.get(kind, ()):
            continue
        if reason in DRIFT.get(kind, ()):
            drift += n
            continue
        unexpected[f"kind {kind}: {outcome}/{reason or '-'}"] = n
    in_progress = outcomes.get("in-progress", 0)
    return {
        "calls": total,
        "in_progress": in_progress,
        "by_outcome": outcomes,
        "by_end_reason": reasons,
        "by_kind": by_kind,
        "triage_digits": dict(triage),
        "by_practice": {p: {r: n for pp, r, n in practices if pp == p} for p in sorted({x[0] for x in practices})},
        "kind4_became_abandons": drift,
        "unexpected": unexpected,
        "unexpected_calls": sum(unexpected.values()),
    }


def engine_log(rd):
    wl = 0
    kinds = {}
    path = os.path.join(rd, "engine.log")
    if os.path.exists(path):
        with open(path, errors="replace") as f:
            for line in f:
                if '"level":"WARN"' in line or '"level":"ERROR"' in line:
                    wl += 1
                    try:
                        m = json.loads(line).get("fields", {}).get("message") or json.loads(line).get("message", "")
                    except ValueError:
                        m = line[:100]
                    kinds[m] = kinds.get(m, 0) + 1
    return {"warn_or_error_lines": wl, "messages": dict(sorted(kinds.items(), key=lambda kv: -kv[1])[:10])}


def main():
    rd = sys.argv[1]
    meta = json.load(open(os.path.join(rd, "meta.json")))
    tol_pct = float(meta.get("plateau_tolerance_pct", 5))
    idle_tol_mb = float(meta.get("idle_tolerance_mb", 64))
    phases = read_phases(rd)
    procs, _ = procmon(os.path.join(rd, "procmon.csv"))
    rss = [(s[0], s[2] / MB) for s in procs.get("engine", [])]  # MB
    metrics, scrape_errors = read_metrics(rd)
    active = metrics.get("permanence_active_calls", [])
    queue = metrics.get("permanence_queue_waiting", [])
    mem_gauges = {k: [(t, v / 1048576.0) for t, v in s] for k, s in metrics.items()
                  if k.startswith("permanence_memory_")}

    base_ph = [p for p in phases if p[0] == "baseline"]
    b0, b1 = (base_ph[0][2], base_ph[0][3]) if base_ph else (rss[0][0], rss[0][0] + 10)
    bwin = (max(b0, b1 - 10), b1)
    baseline = median(window(rss, *bwin))
    res = {"meta": meta, "baseline_window": [round(bwin[0], 3), round(bwin[1], 3)]}
    res["baseline_rss_mb"] = rnd(baseline)
    res["baseline_gauges_mb"] = {k: rnd(median(window(s, *bwin))) for k, s in mem_gauges.items()}

    cycles = []
    loads = [p for p in phases if p[0] == "load"]
    for _, k, a, b in loads:
        c = {"phase": k, "load_s": round(b - a, 1)}
        third = (b - a) / 3
        pw = (b - third, b)
        mw = (a + third, b - third)
        plateau = median(window(rss, *pw))
        middle = median(window(rss, *mw))
        act = window(active, *pw)
        c["plateau_rss_mb"] = rnd(plateau)
        c["middle_third_rss_mb"] = rnd(middle)
        c["mean_active_calls"] = rnd(mean(act), 0)
        c["max_active_calls"] = max(act) if act else None
        c["queue_waiting_mean_max"] = [rnd(mean(window(queue, *pw))), max(window(queue, *pw), default=None)]
        for st in ("available", "offered", "on_call"):
            ser = metrics.get(f'permanence_agents{{state="{st}"}}', [])
            w_ = window(ser, *pw)
            c[f"agents_{st}_mean_min_max"] = [rnd(mean(w_)), min(w_, default=None), max(w_, default=None)]
        if plateau is not None and baseline is not None and act and mean(act) > 0:
            c["rss_per_active_call_kb"] = rnd((plateau - baseline) * 1024 / mean(act), 1)
        drain = [p for p in phases if p[0] == "drain" and p[1] == k]
        d_end = drain[0][3] if drain else b
        c["drain_s"] = rnd(d_end - b)
        c["max_rss_mb"] = rnd(max(window(rss, a, d_end), default=None))
        idle = [p for p in phases if p[0] in ("idle", "final_idle") and p[1] == k]
        if idle:
            i0, i1 = idle[0][2], idle[0][3]
            c["idle_kind"] = idle[0][0]
            c["idle_s"] = rnd(i1 - i0)
            c["rss_end_of_idle_mb"] = rnd(median(window(rss, max(i0, i1 - 5), i1)))
            c["active_calls_end_of_idle"] = (window(active, i0, i1) or [None])[-1]
        g = {}
        for name, s in mem_gauges.items():
            gp = median(window(s, *pw))
            gb = res["baseline_gauges_mb"].get(name)
            e = {"plateau_mb": rnd(gp)}
            if gp is not None and gb is not None and act and mean(act) > 0:
                e["per_active_call_kb"] = rnd((gp - gb) * 1024 / mean(act), 1)
            if idle:
                e["end_of_idle_mb"] = rnd((window(s, i0, i1) or [None])[-1])
            g[name] = e
        if g:
            c["gauges"] = g
        cpu = cpu_of(procs, pw[0], pw[1])
        c["cpu_cores_plateau"] = {kk: (v or {}).get("cores") for kk, v in cpu.items()
                                  if kk in ("engine", "sipp_agent", "sink_caller", "sink_agent",
                                            "sipp_carrier", "monitors", "other_processes_on_machine")}
        cycles.append(c)
    res["cycles"] = cycles
    final = [p for p in phases if p[0] == "final_idle"]
    res["final_idle_s"] = rnd(final[0][3] - final[0][2]) if final else None
    res["final_idle_rss_mb"] = cycles[-1].get("rss_end_of_idle_mb") if cycles and final else None
    res["final_idle_gauges_mb"] = {k: v.get("end_of_idle_mb") for k, v in (cycles[-1].get("gauges") or {}).items()} if cycles and final else {}

    # A time series for plots: every metrics scrape, with the RSS sample
    # closest to it and the phase it falls in.
    t_first = phases[0][2] if phases else (rss[0][0] if rss else 0)
    with open(os.path.join(rd, "timeseries.csv"), "w") as f:
        names = sorted(mem_gauges)
        f.write(",".join(["t_s", "phase", "rss_mb", "active_calls", "queue_waiting"] + [
            n.replace("permanence_memory_", "") + "_mb" for n in names]) + "\n")
        ri = 0
        gi = {n: 0 for n in names}
        qi = 0
        for t, v in active:
            while ri + 1 < len(rss) and rss[ri + 1][0] <= t:
                ri += 1
            while qi + 1 < len(queue) and queue[qi + 1][0] <= t:
                qi += 1
            ph = next((f"{p[0]}{p[1] or ''}" for p in phases if p[2] <= t <= p[3]), "")
            row = [f"{t - t_first:.1f}", ph, f"{rss[ri][1]:.1f}" if rss else "", f"{v:g}",
                   f"{queue[qi][1]:g}" if queue else ""]
            for n in names:
                ser = mem_gauges[n]
                while gi[n] + 1 < len(ser) and ser[gi[n] + 1][0] <= t:
                    gi[n] += 1
                row.append(f"{ser[gi[n]][1]:.1f}" if ser else "")
            f.write(",".join(row) + "\n")

    # Calls, both SIPp sides.
    car_counters = ["kind1", "kind2", "kind2b", "kind3", "kind4", "pressed", "done1", "done2", "done3", "done4"]
    ag_counters = ["offers", "cancelled", "answered", "agent_bye", "caller_bye", "late_cancel"]
    carrier = {"cycles": []}
    tot = {}
    expected_calls = int(meta["rate"]) * int(meta["duration_s"])
    for _, k, a, b in loads:
        st = stat_counts(os.path.join(rd, f"carrier_{k}_stat.csv"))
        side = sipp_side(st, car_counters)
        carrier["cycles"].append(side)
        for key in ("outgoing", "successful", "failed", "retransmissions", "still_open"):
            tot[key] = tot.get(key, 0) + (side.get(key) or 0)
        for c, v in side["counters"].items():
            tot.setdefault("counters", {})[c] = tot.get("counters", {}).get(c, 0) + (v or 0)
        for c, v in side["failures"].items():
            tot.setdefault("failures", {})[c] = tot.get("failures", {}).get(c, 0) + v
    carrier["total"] = tot
    carrier["expected_calls"] = expected_calls
    agent = sipp_side(stat_counts(os.path.join(rd, "agent_stat.csv")), ag_counters)
    recs = records(rd)
    res["carrier"] = carrier
    res["agent"] = agent
    res["records"] = recs
    res["engine_log"] = engine_log(rd)
    ex = os.path.join(rd, "engine_exit")
    res["engine_exit"] = open(ex).read().strip().replace("\n", " ") if os.path.exists(ex) else None
    res["metrics_scrape_errors"] = scrape_errors
    for name in ("sink_caller", "sink_agent"):
        p = os.path.join(rd, f"{name}.json")
        res[name] = open(p).read().strip().replace("\n", " ") if os.path.exists(p) else None

    # Failed calls.
    missing = max(0, expected_calls - (tot.get("outgoing") or 0))
    car_failed = (tot.get("failed") or 0)
    car_open = tot.get("still_open") or 0
    ag_failed = agent.get("failed") or 0
    ag_open = agent.get("still_open") or 0
    rh = records_health(rd, metrics)
    res["records_store"] = rh
    records_lost = rh.get("dropped_total", 0) > 0
    eng_failed = (recs or {}).get("unexpected_calls", 0)
    if recs and records_lost:
        # A call whose last update was dropped stays "in-progress": that is
        # the records defect reported below, not a failed call.
        eng_failed -= recs.get("in_progress", 0)
    failed = {
        "carrier_failed": car_failed,
        "carrier_never_created": missing,
        "carrier_still_open_at_end": car_open,
        "agent_failed": ag_failed,
        "agent_still_open_at_end": ag_open,
        "engine_unexpected_outcomes": eng_failed,
    }
    failed["total"] = sum(failed.values())
    res["failed_calls"] = failed

    # Verdict.
    reasons = []
    alive = (res["engine_exit"] or "").startswith("alive")
    if not alive:
        reasons.append(f"engine not alive at the end ({res['engine_exit']})")
    if recs is None:
        reasons.append("no call records (records.sqlite)")
    elif records_lost:
        reasons.append(f"call records lost: the engine dropped {rh.get('dropped_total')} record rows "
                       f"(write failures {rh.get('write_failures_total')}, store healthy at the end: "
                       f"{rh.get('healthy')}); {recs['calls']} calls recorded of {tot.get('outgoing')}, "
                       f"{recs.get('in_progress')} left in progress")
    if agent.get("incoming") is None:
        reasons.append("no statistics from the SIPp agent (agent_stat.csv)")
    if any(c.get("outgoing") is None for c in carrier["cycles"]):
        reasons.append("no statistics from a SIPp carrier (carrier_<k>_stat.csv)")
    if failed["total"]:
        reasons.append(f"{failed['total']} failed calls")
    p_first = cycles[0].get("plateau_rss_mb") if cycles else None
    p_last = cycles[-1].get("plateau_rss_mb") if cycles else None
    m_last = cycles[-1].get("middle_third_rss_mb") if cycles else None
    plateau_ok = True
    if len(cycles) >= 2 and p_first and p_last:
        g = (p_last - p_first) / p_first * 100
        res["plateau_growth_first_to_last_pct"] = rnd(g, 2)
        if g > tol_pct:
            plateau_ok = False
            reasons.append(f"no plateau: last phase's plateau {p_last} MB is {g:.1f} % above the first's {p_first} MB (tolerance {tol_pct} %)")
    if m_last and p_last:
        g = (p_last - m_last) / m_last * 100
        res["plateau_growth_within_last_phase_pct"] = rnd(g, 2)
        if g > tol_pct:
            plateau_ok = False
            reasons.append(f"no plateau inside the last phase: last third {p_last} MB is {g:.1f} % above the middle third {m_last} MB (tolerance {tol_pct} %)")
    if not p_last:
        plateau_ok = False
        reasons.append("no plateau figure (no RSS samples)")
    res["plateau_ok"] = plateau_ok
    fi = res["final_idle_rss_mb"]
    if fi is None or baseline is None:
        reasons.append("no final idle figure")
        res["final_idle_above_baseline_mb"] = None
    else:
        d = fi - baseline
        res["final_idle_above_baseline_mb"] = rnd(d)
        if d > idle_tol_mb:
            reasons.append(f"RSS after the final idle {fi:.1f} MB is {d:.1f} MB above the baseline {baseline:.1f} MB (tolerance {idle_tol_mb:g} MB)")
        if (res["final_idle_s"] or 0) < 120:
            res["note"] = "final idle shorter than the 2 minutes of the acceptance criterion"
    fi_d = res.get("final_idle_above_baseline_mb")
    res["checks"] = {
        "engine_alive": alive,
        "zero_failed_calls": failed["total"] == 0,
        "plateau": plateau_ok,
        "final_idle_within_tolerance": fi_d is not None and fi_d <= idle_tol_mb,
        "records_complete": recs is not None and not records_lost,
    }
    res["verdict"] = "PASS" if not reasons else "FAIL"
    res["fail_reasons"] = reasons
    with open(os.path.join(rd, "summary.json"), "w") as f:
        json.dump(res, f, indent=1)
    report(res, rd)
    return 0 if not reasons else 1


def report(s, rd):
    m = s["meta"]
    out = []
    w = out.append
    w(f"soak: {m['rate']} calls/s, {m['duration_s']} s of load in {m['cycles']} phase(s) of {m['cycle_s']} s, "
      f"idle {m['idle_s']} s, final idle {m['final_idle_s']} s, {m['agents']} agents (+ {m.get('agents_b')} for the understaffed practice); "
      f"commit {m.get('commit')} binary {m.get('binary_sha256')} {m.get('malloc_env') or ''}".rstrip())
    gauges = sorted(s.get("baseline_gauges_mb") or {})
    w(f"baseline RSS {s['baseline_rss_mb']} MB" + "".join(
        f"; {g.replace('permanence_memory_', '')} {s['baseline_gauges_mb'][g]} MB" for g in gauges))
    hdr = ("| phase | load s | mean / max active calls | queue mean / max | plateau RSS MB | max RSS MB "
           "| RSS per active call kB | drain s | idle s | RSS end of idle MB | engine CPU |")
    w(hdr)
    w("|---:" * (hdr.count("|") - 1) + "|")
    for c in s["cycles"]:
        q = c.get("queue_waiting_mean_max") or [None, None]
        w(f"| {c['phase']} | {c['load_s']} | {c['mean_active_calls']} / {c['max_active_calls']} | {q[0]} / {q[1]} "
          f"| {c['plateau_rss_mb']} | {c['max_rss_mb']} | {c.get('rss_per_active_call_kb')} | {c['drain_s']} "
          f"| {c.get('idle_s')}{' (final)' if c.get('idle_kind') == 'final_idle' else ''} "
          f"| {c.get('rss_end_of_idle_mb')} | {(c.get('cpu_cores_plateau') or {}).get('engine')} |")
    for c in s["cycles"]:
        av, of, oc = (c.get(f"agents_{x}_mean_min_max") or [None] * 3 for x in ("available", "offered", "on_call"))
        w(f"  phase {c['phase']} plateau window: agents free {av[0]} (min {av[1]}), ringing {of[0]}, talking {oc[0]}; "
          f"CPU cores {c.get('cpu_cores_plateau')}")
        for g, e in (c.get("gauges") or {}).items():
            w(f"  phase {c['phase']} {g}: plateau {e.get('plateau_mb')} MB, per active call {e.get('per_active_call_kb')} kB, "
              f"end of idle {e.get('end_of_idle_mb')} MB")
    w(f"final idle: RSS {s['final_idle_rss_mb']} MB after {s['final_idle_s']} s, "
      f"{s['final_idle_above_baseline_mb']} MB above the baseline"
      + "".join(f"; {g.replace('permanence_memory_', '')} {v} MB" for g, v in (s.get("final_idle_gauges_mb") or {}).items()))
    if "plateau_growth_first_to_last_pct" in s:
        w(f"plateau: last phase {s['plateau_growth_first_to_last_pct']} % vs the first; "
          f"inside the last phase {s.get('plateau_growth_within_last_phase_pct')} % (last third vs middle third)")
    else:
        w(f"plateau: inside the phase {s.get('plateau_growth_within_last_phase_pct')} % (last third vs middle third)")
    ct = s["carrier"]["total"]
    cc = ct.get("counters", {})
    w(f"carrier: {ct.get('outgoing')} calls of {s['carrier']['expected_calls']}, {ct.get('successful')} completed their "
      f"script, {ct.get('failed')} failed, retransmissions {ct.get('retransmissions')}; scripted kinds: "
      + ", ".join(f"{KIND_NAMES[str(i)]} {cc.get(f'kind{i}')} (done {cc.get(f'done{i}')})" for i in range(1, 5))
      + f"; kind 2 to the understaffed practice {cc.get('kind2b')}; digit pressed {cc.get('pressed')}")
    a = s["agent"]
    ac = a["counters"]
    w(f"agent: {a.get('incoming')} offers, {a.get('successful')} completed, {a.get('failed')} failed, "
      f"retransmissions {a.get('retransmissions')}; answered {ac.get('answered')} (agent hung up {ac.get('agent_bye')}, "
      f"patient hung up {ac.get('caller_bye')}), cancelled while ringing {ac.get('cancelled')}, "
      f"CANCEL crossing the 200 {ac.get('late_cancel')}")
    r = s.get("records")
    if r:
        w(f"engine records: {r['calls']} calls; outcomes {r['by_outcome']}; end reasons {r['by_end_reason']}; "
          f"triage digits {r['triage_digits']}; kind-4 calls that became abandons {r['kind4_became_abandons']}")
        w(f"  by practice: {r['by_practice']}")
        if r["unexpected"]:
            lost = (s.get("records_store") or {}).get("dropped_total", 0) > 0
            w(f"  unexpected engine outcomes{' (in-progress rows: updates the records store dropped)' if lost else ''}: "
              f"{r['unexpected']}")
    f = s["failed_calls"]
    w(f"failed calls: {f['total']} (" + ", ".join(f"{k} {v}" for k, v in f.items() if k != "total") + ")")
    fl = {**(ct.get("failures") or {}), **{f"agent {k}": v for k, v in (a.get("failures") or {}).items()}}
    if fl:
        w(f"  SIPp failure counters: {fl}")
    if s.get("records_store"):
        w(f"records store: {s['records_store']}")
    w("checks: " + ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in s["checks"].items()))
    el = s["engine_log"]
    w(f"engine: {s['engine_exit']}; warn/error log lines {el['warn_or_error_lines']}"
      + (f" {el['messages']}" if el["messages"] else "")
      + (f"; metrics scrape errors {s['metrics_scrape_errors']}" if s["metrics_scrape_errors"] else ""))
    w(f"{s['verdict']}" + (": " + "; ".join(s["fail_reasons"]) if s["fail_reasons"] else
                           f" (zero failed calls, plateau within {m.get('plateau_tolerance_pct')} %, "
                           f"final idle within {m.get('idle_tolerance_mb')} MB of the baseline)"))
    text = "\n".join(out)
    print(text)
    with open(os.path.join(rd, "summary.txt"), "w") as fh:
        fh.write(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
