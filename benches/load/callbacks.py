#!/usr/bin/env python3
"""Callbacks under load (run.sh callbacks): accounts for every callback.

  callbacks.py RUNDIR
      Reads the run directory (metrics.txt: the engine's /metrics after the
      drain; records.sqlite: tables callbacks, outbound_calls, calls;
      carrier_stat.csv, agent_stat.csv, gateway_stat.csv: SIPp counters;
      gateway_logs.log: one line per INVITE at the gateway; procmon.csv;
      engine.log; progress.csv; meta.json), prints a summary, writes
      summary.json and exits 1 on FAIL. PASS needs all of:
        - requested == completed + failed + cancelled + handled (metrics),
          and pending == 0 (gauge and records);
        - the records agree with the metrics: one row per request, rows by
          status = the metric counts (completed, failed, cancelled,
          handled), no row pending or dialling;
        - one gateway INVITE per try: INVITEs received (SIPp counter and
          its log) == tries counted by the engine
          (permanence_callback_attempts_total, all results) == outbound
          records of origin 'callback' == the attempts summed over the
          callbacks rows; tries answered == completed;
        - every caller who pressed 2 then 1 was hung up by the engine
          (cb_bye == cb_asked, no cb_no_bye) and made exactly one request
          (requested == cb_asked, one row per caller number);
        - no failed call on any SIPp side, the engine alive at the end.

  callbacks.py watch URL OUT.csv [--interval 1]
      Samples the callback families of /metrics until SIGTERM:
      t_unix,requested,completed,failed,handled,pending,attempts.

  callbacks.py drain URL [--timeout 120]
      Returns when permanence_callbacks_pending is 0 for every practice
      (two scrapes in a row, after the gauge's 5 s refresh), or after
      --timeout seconds (exit status 1).
"""
import json
import os
import re
import signal
import sqlite3
import sys
import time
import urllib.request
from datetime import datetime

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from analyze import cpu_of, failures, pct, procmon, sipp_stats  # noqa: E402
from genconf import FORWARDED  # noqa: E402

LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)')
LABEL = re.compile(r'(\w+)="([^"]*)"')


def parse_metrics(text):
    """{family: [(labels dict, value)]} of the callback families and a few
    call counters."""
    out = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        m = LINE.match(line)
        if not m:
            continue
        name, labels, v = m.group(1), m.group(2) or "", m.group(3)
        if not (name.startswith("permanence_callback") or name.startswith("permanence_calls_")
                or name.startswith("permanence_outbound") or name in (
                    "permanence_active_calls", "permanence_queue_waiting")):
            continue
        try:
            val = float(v)
        except ValueError:
            continue
        out.setdefault(name, []).append((dict(LABEL.findall(labels)), val))
    return out


def total(m, family, **match):
    return sum(v for lab, v in m.get(family, []) if all(lab.get(k) == x for k, x in match.items()))


def by_label(m, family, label):
    out = {}
    for lab, v in m.get(family, []):
        k = lab.get(label, "")
        out[k] = out.get(k, 0) + v
    return {k: int(v) for k, v in sorted(out.items())}


def scrape(url):
    return parse_metrics(urllib.request.urlopen(url, timeout=5).read().decode("utf-8", "replace"))


def progress_row(m):
    return (int(total(m, "permanence_callbacks_requested_total")),
            int(total(m, "permanence_callbacks_completed_total")),
            int(total(m, "permanence_callbacks_failed_total")),
            int(total(m, "permanence_callbacks_handled_total")),
            int(total(m, "permanence_callbacks_pending")),
            int(total(m, "permanence_callback_attempts_total")))


def watch(url, out, interval):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    with open(out, "w", buffering=1) as f:
        f.write("t_unix,requested,completed,failed,handled,pending,attempts\n")
        while not stop:
            t = time.time()
            try:
                f.write(f"{t:.3f}," + ",".join(map(str, progress_row(scrape(url)))) + "\n")
            except Exception:  # noqa: BLE001 - a failed scrape is a gap
                pass
            time.sleep(max(0.0, interval - (time.time() - t)))


def drain(url, timeout):
    t0 = time.time()
    zero = 0
    last = None
    while True:
        try:
            m = scrape(url)
            row = progress_row(m)
            pend = m.get("permanence_callbacks_pending", [])
            ok = bool(pend) and all(v == 0 for _, v in pend)
            zero = zero + 1 if ok else 0
            if row != last:
                print(f"  +{time.time() - t0:5.1f} s: requested {row[0]} completed {row[1]} failed {row[2]} "
                      f"handled {row[3]} pending {row[4]} tries {row[5]}", flush=True)
                last = row
            if zero >= 2:
                print(f"  no callback pending {time.time() - t0:.1f} s after the last call", flush=True)
                return 0
        except Exception as e:  # noqa: BLE001
            print(f"  scrape failed: {e}", flush=True)
        if time.time() - t0 > timeout:
            print(f"  callbacks still pending after {timeout} s", flush=True)
            return 1
        time.sleep(1)


def parse_ts(s):
    if not s:
        return None
    s = s.replace("Z", "+00:00")
    return datetime.fromisoformat(s).timestamp()


def dist(xs):
    if not xs:
        return None
    return {"n": len(xs), "p50_s": round(pct(xs, 0.5), 2), "p95_s": round(pct(xs, 0.95), 2),
            "max_s": round(max(xs), 2), "min_s": round(min(xs), 2)}


def records(rd):
    path = os.path.join(rd, "records.sqlite")
    if not os.path.exists(path):
        return {"error": "no records.sqlite"}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    q = lambda sql: db.execute(sql).fetchall()  # noqa: E731
    r = {}
    r["callbacks_by_status"] = dict(q("SELECT status, count(*) FROM callbacks GROUP BY status"))
    r["callbacks_by_origin"] = dict(q("SELECT origin, count(*) FROM callbacks GROUP BY origin"))
    r["callbacks_rows"] = q("SELECT count(*) FROM callbacks")[0][0]
    r["distinct_numbers"] = q("SELECT count(DISTINCT number) FROM callbacks")[0][0]
    r["_numbers"] = {n for (n,) in q("SELECT number FROM callbacks")}
    r["_numbers_tried"] = {n for (n,) in q("SELECT number FROM callbacks WHERE attempts > 0")}
    r["attempts_sum"] = q("SELECT coalesce(sum(attempts), 0) FROM callbacks")[0][0]
    r["attempts_by_status"] = {f"{s} x{a}": n for s, a, n in q(
        "SELECT status, attempts, count(*) FROM callbacks GROUP BY status, attempts ORDER BY status, attempts")}
    r["last_result_of_failed"] = dict(q(
        "SELECT coalesce(last_result, '-'), count(*) FROM callbacks WHERE status = 'failed' GROUP BY 1"))
    rows = q("SELECT requested_at, joined_at, completed_at, deadline_at, status FROM callbacks")
    done = [(parse_ts(a), parse_ts(j), parse_ts(c), parse_ts(d)) for a, j, c, d, s in rows if s == "completed"]
    r["request_to_completion"] = dist([c - a for a, j, c, d in done if a and c])
    r["joined_to_request"] = dist([a - j for a, j, c, d in rows_ts(rows) if a and j])
    r["completed_after_deadline_rows"] = sum(1 for a, j, c, d in done if c and d and c > d)
    r["outbound_by_origin"] = dict(q("SELECT origin, count(*) FROM outbound_calls GROUP BY origin"))
    r["outbound_callback_by_outcome"] = dict(q(
        "SELECT outcome, count(*) FROM outbound_calls WHERE origin = 'callback' GROUP BY outcome"))
    r["outbound_callback_status_codes"] = {str(k): v for k, v in q(
        "SELECT coalesce(status_code, 0), count(*) FROM outbound_calls WHERE origin = 'callback' GROUP BY 1")}
    r["calls"] = q("SELECT count(*) FROM calls")[0][0]
    r["calls_by_outcome"] = dict(q("SELECT outcome, count(*) FROM calls GROUP BY outcome"))
    r["calls_by_end_reason"] = dict(q("SELECT coalesce(end_reason, '-'), count(*) FROM calls GROUP BY 1"))
    db.close()
    return r


def rows_ts(rows):
    return [(parse_ts(a), parse_ts(j), parse_ts(c), parse_ts(d)) for a, j, c, d, s in rows]


def sipp_side(path, counters):
    st = sipp_stats(path)
    return {
        "incoming": st.get("IncomingCall(C)"),
        "outgoing": st.get("OutgoingCall(C)"),
        "successful": st.get("SuccessfulCall(C)"),
        "failed": st.get("FailedCall(C)"),
        "still_open": st.get("CurrentCall"),
        "retransmissions": st.get("Retransmissions(C)"),
        "failures": failures(st),
        "counters": {c: st.get(f"{c}(C)", 0) for c in counters},
    }


def gateway_log(rd):
    """INVITEs logged by the gateway: count, distinct numbers, the numbers
    called more than once (retries), the caller IDs (From) seen; and the
    set of numbers called (E.164)."""
    path = os.path.join(rd, "gateway_logs.log")
    n, nums, froms = 0, {}, {}
    if os.path.exists(path):
        for line in open(path, errors="replace"):
            p = line.split()
            if p and p[0] == "G" and len(p) > 2:
                n += 1
                nums["+" + p[1]] = nums.get("+" + p[1], 0) + 1
                froms["+" + p[2]] = froms.get("+" + p[2], 0) + 1
    return {"invites_logged": n, "distinct_numbers": len(nums),
            "numbers_called_more_than_once": sum(1 for v in nums.values() if v > 1),
            "caller_ids": froms}, set(nums)


def carrier_log(rd):
    """The caller numbers of the calls that asked for a callback (K lines
    of cb_carrier.xml)."""
    path = os.path.join(rd, "carrier_logs.log")
    asked, other = set(), 0
    if os.path.exists(path):
        for line in open(path, errors="replace"):
            p = line.split()
            if len(p) >= 5 and p[0] == "K":
                if p[4] == "true":
                    asked.add(p[2])
                else:
                    other += 1
    return asked, other


def engine_log(rd):
    path = os.path.join(rd, "engine.log")
    ev, warn, msgs = {}, 0, {}
    if os.path.exists(path):
        for line in open(path, errors="replace"):
            try:
                j = json.loads(line)
            except ValueError:
                continue
            e = j.get("event") or j.get("fields", {}).get("event", "")
            if e:
                ev[e] = ev.get(e, 0) + 1
            if j.get("level") in ("WARN", "ERROR"):
                warn += 1
                k = f"{j.get('level')} {e or j.get('target', '')}: {str(j.get('message', ''))[:90]}"
                msgs[k] = msgs.get(k, 0) + 1
    return {"events": dict(sorted(ev.items())), "warn_or_error_lines": warn,
            "warn_messages": dict(sorted(msgs.items(), key=lambda kv: -kv[1]))}


def main(rd):
    meta = json.load(open(os.path.join(rd, "meta.json")))
    res = {"meta": meta}
    mpath = os.path.join(rd, "metrics.txt")
    m = parse_metrics(open(mpath, errors="replace").read()) if os.path.exists(mpath) else {}
    req = int(total(m, "permanence_callbacks_requested_total"))
    comp = by_label(m, "permanence_callbacks_completed_total", "timeliness")
    fail = by_label(m, "permanence_callbacks_failed_total", "reason")
    handled = int(total(m, "permanence_callbacks_handled_total"))
    pending = by_label(m, "permanence_callbacks_pending", "practice")
    tries = by_label(m, "permanence_callback_attempts_total", "result")
    completed = sum(comp.values())
    cancelled = fail.get("cancelled", 0)
    failed = sum(v for k, v in fail.items() if k != "cancelled")
    res["metrics"] = {
        "requested": req,
        "requested_by_origin": by_label(m, "permanence_callbacks_requested_total", "origin"),
        "completed": completed, "completed_by_timeliness": comp,
        "failed": failed, "failed_by_reason": {k: v for k, v in fail.items() if k != "cancelled"},
        "cancelled": cancelled, "handled": handled,
        "pending": sum(pending.values()), "pending_by_practice": pending,
        "tries_by_result": tries, "tries": sum(tries.values()),
        "calls_offered": int(total(m, "permanence_calls_offered_total")),
        "calls_answered": int(total(m, "permanence_calls_answered_total")),
        "calls_abandoned": int(total(m, "permanence_calls_abandoned_total")),
        "active_calls_at_end": int(total(m, "permanence_active_calls")),
    }
    rec = records(rd)
    numbers, numbers_tried = rec.pop("_numbers", set()), rec.pop("_numbers_tried", set())
    res["records"] = rec
    car = sipp_side(os.path.join(rd, "carrier_stat.csv"), ["waited", "waited_done", "cb_asked", "cb_bye", "cb_no_bye"])
    agt = sipp_side(os.path.join(rd, "agent_stat.csv"), [])
    gw = sipp_side(os.path.join(rd, "gateway_stat.csv"), ["invites", "answered", "busy", "hung_up"])
    gl, gw_numbers = gateway_log(rd)
    gw.update(gl)
    asked_numbers, _ = carrier_log(rd)
    car["callers_asked_logged"] = len(asked_numbers)
    res["carrier"], res["agent"], res["gateway"] = car, agt, gw
    res["engine_log"] = engine_log(rd)
    try:
        res["engine_exit"] = " ".join(open(os.path.join(rd, "engine_exit")).read().split())
    except OSError:
        res["engine_exit"] = "unknown"
    # CPU and RSS over the load (carrier start to end).
    procs, _ = procmon(os.path.join(rd, "procmon.csv"))
    t0, t1 = meta.get("t_carrier_start"), meta.get("t_carrier_end")
    if t0 and t1 and procs:
        res["cpu_load"] = cpu_of(procs, t0, t1)
        eng = procs.get("engine", [])
        res["engine_rss_peak_kb"] = max((s[2] for s in eng), default=None)
        calls = meta.get("calls") or 0
        e = (res["cpu_load"].get("engine") or {})
        if calls and e.get("cpu_s") is not None:
            res["engine_cpu_ms_per_call"] = round(1000 * e["cpu_s"] / calls, 2)
    res["drain_s"] = meta.get("drain_s")

    st = rec.get("callbacks_by_status", {})
    cc = car["counters"]
    gwc = gw["counters"]
    checks = {
        "requested == completed + failed + cancelled + handled":
            req == completed + failed + cancelled + handled,
        "pending == 0 (gauge)": sum(pending.values()) == 0 and bool(pending),
        "records: one row per request": rec.get("callbacks_rows") == req,
        "records: completed == metrics": st.get("completed", 0) == completed,
        "records: failed == metrics": st.get("failed", 0) == failed,
        "records: cancelled == metrics": st.get("cancelled", 0) == cancelled,
        "records: handled == metrics": st.get("handled", 0) == handled,
        "records: none pending or dialling": st.get("pending", 0) == 0 and st.get("dialling", 0) == 0,
        "gateway INVITEs == tries (metrics)": gwc.get("invites") == sum(tries.values()),
        "gateway INVITEs == gateway log lines": gwc.get("invites") == gw["invites_logged"],
        "gateway INVITEs == outbound records (callback)":
            gwc.get("invites") == rec.get("outbound_by_origin", {}).get("callback", 0),
        "gateway INVITEs == attempts summed over the records": gwc.get("invites") == rec.get("attempts_sum"),
        "tries answered == completed == gateway answered":
            tries.get("answered", 0) == completed == gwc.get("answered"),
        "tries busy == gateway busy": tries.get("busy", 0) == gwc.get("busy"),
        "every caller who confirmed was hung up by the engine":
            cc.get("cb_bye") == cc.get("cb_asked") and not cc.get("cb_no_bye"),
        "one request per caller who confirmed": req == cc.get("cb_asked"),
        "one row per caller number": rec.get("distinct_numbers") == rec.get("callbacks_rows"),
        "the numbers recorded are those of the callers who asked (carrier log)": numbers == asked_numbers,
        "the gateway called exactly the recorded numbers that had a try": gw_numbers == numbers_tried,
        "the gateway saw the practice's number as caller ID": set(gw["caller_ids"]) <= {FORWARDED},
        "no failed SIPp call (carrier, agent, gateway)":
            not car["failed"] and not agt["failed"] and not gw["failed"],
        "engine alive at the end": res["engine_exit"].startswith("alive"),
    }
    ev = res["engine_log"]["events"]
    if "callbacks=info" in meta.get("engine_rust_log", ""):
        # One log line per request, try and completion (info level).
        checks["engine log: one callback.requested line per request"] = ev.get("callback.requested", 0) == req
        checks["engine log: one callback.attempt line per try"] = ev.get("callback.attempt", 0) == sum(tries.values())
        checks["engine log: one callback.completed line per completion"] = ev.get("callback.completed", 0) == completed
        checks["engine log: one callback.failed line per failure"] = ev.get("callback.failed", 0) == failed + cancelled
        checks["engine log: no callback.lost"] = not ev.get("callback.lost")
    res["checks"] = checks
    res["pass"] = all(checks.values())
    with open(os.path.join(rd, "summary.json"), "w") as f:
        json.dump(res, f, indent=2)

    w = print
    mm = res["metrics"]
    w(f"calls: {car['outgoing']} placed at {meta.get('rate')}/s, {car['successful']} ok, {car['failed']} failed "
      f"(retrans {car['retransmissions']}); {cc.get('cb_asked')} asked for a callback, "
      f"{cc.get('cb_bye')} hung up by the engine after the confirmation, {cc.get('cb_no_bye')} not; "
      f"{cc.get('waited_done')}/{cc.get('waited')} waited and hung up")
    w(f"  engine: calls offered {mm['calls_offered']}, answered {mm['calls_answered']}, "
      f"abandoned {mm['calls_abandoned']}; records: {rec.get('calls')} calls, end reasons {rec.get('calls_by_end_reason')}")
    w(f"callbacks (metrics): requested {req} {mm['requested_by_origin']}; completed {completed} {comp}; "
      f"failed {failed} {mm['failed_by_reason']}; cancelled {cancelled}; handled {handled}; pending {mm['pending']}")
    w(f"  tries {mm['tries']} {tries}; gateway INVITEs {gwc.get('invites')} (answered {gwc.get('answered')}, "
      f"busy {gwc.get('busy')}, logged {gw['invites_logged']}, {gw['distinct_numbers']} numbers, "
      f"{gw['numbers_called_more_than_once']} called more than once); agent INVITEs {agt['incoming']}")
    w(f"records: callbacks {rec.get('callbacks_by_status')} (attempts {rec.get('attempts_by_status')}); "
      f"outbound {rec.get('outbound_by_origin')} {rec.get('outbound_callback_by_outcome')}")
    w(f"  request -> completion: {rec.get('request_to_completion')}; "
      f"joined queue -> request: {rec.get('joined_to_request')}")
    if res.get("drain_s") is not None:
        w(f"  last call -> no callback pending: {res['drain_s']} s")
    if "cpu_load" in res:
        c = res["cpu_load"]
        g = lambda k: (c.get(k) or {}).get("cores")  # noqa: E731
        w(f"CPU (cores, during the load): engine {g('engine')}, sipp carrier {g('sipp_carrier')}, "
          f"agent {g('sipp_agent')}, gateway {g('sipp_gateway')}, other processes "
          f"{g('other_processes_on_machine')}; engine {res.get('engine_cpu_ms_per_call')} ms CPU/call; "
          f"RSS peak {res.get('engine_rss_peak_kb')} kB")
    el = res["engine_log"]
    w(f"engine log: {el['events']}; warn/error lines {el['warn_or_error_lines']}; engine {res['engine_exit']}")
    for k, n in list(el["warn_messages"].items())[:8]:
        w(f"  {n} x {k}")
    for k, v in checks.items():
        if not v:
            w(f"  check failed: {k}")
    w("PASS: no callback lost, each accounted for" if res["pass"] else "FAIL")
    return 0 if res["pass"] else 1


if __name__ == "__main__":
    a = sys.argv[1:]
    if not a:
        sys.exit(__doc__)
    if a[0] == "watch":
        iv = float(a[a.index("--interval") + 1]) if "--interval" in a else 1.0
        watch(a[1], a[2], iv)
    elif a[0] == "drain":
        to = float(a[a.index("--timeout") + 1]) if "--timeout" in a else 120.0
        sys.exit(drain(a[1], to))
    else:
        sys.exit(main(a[0]))
