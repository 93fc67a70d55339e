#!/usr/bin/env bash
# Load benchmark of the full call path: SIPp carrier -> Permanence (release
# build) -> SIPp telesecretary softphone, with RTP endpoints.
#
#   benches/load/run.sh rate  [--rate 500,1000] [--duration 30] [--hold-ms 1000] [--agents 2500]
#   benches/load/run.sh media [--calls 1000] [--setup-rate 100] [--measure 30] [--settle 3] [--agents N]
#   benches/load/run.sh queue [--calls 1000] [--setup-rate 100] [--measure 30]
#   benches/load/run.sh soak  [--rate 200] [--duration 3600] [--cycle 600] [--idle 120] [--final-idle 120]
#                             [--agents N] [--agents-b K] [--short]
#   benches/load/run.sh callbacks [--rate 20] [--duration 60] [--share 30] [--agents N] [--hold-ms 1000]
#                             [--queue-delay 5] [--gw-busy 0] [--drain-timeout 120]
#   benches/load/run.sh webrtc [--calls 50,100] [--setup-rate 10] [--measure 45] [--settle 3] [--agents N]
#                             [--compare] [--client-threads 2]
#
# rate : a carrier calls the practice at a fixed rate (calls/s) for --duration
#        seconds; the engine answers (20 ms silent greeting), queues the call,
#        offers it to the longest-idle of N registered agents (one SIPp UAS
#        answering at once for all of them), bridges; the caller hangs up
#        after --hold-ms. Every rate runs on a fresh engine. A rate passes
#        when every call succeeded on both SIPp sides.
# media: --calls bridged calls set up at --setup-rate, then RTP flows both
#        ways on all of them (rtpload plays every caller and every agent,
#        50 packets/s each way per call, G.711 PCMU), measured for --measure
#        seconds: loss per direction, relay latency, engine CPU and RSS.
# queue: --calls calls set up at --setup-rate wait in a queue nobody serves
#        (greeting, then hold music), held --measure seconds more, then the
#        carrier hangs up. footprint.py gives the engine's memory per
#        queued call from its own gauges (exact heap, and RSS); media mode
#        gives the same per bridged call.
# soak : one engine for the whole run, held at --rate calls/s with a mix of
#        calls (sipp/soak_carrier.xml, sipp/soak_agent.xml: a few seconds
#        of greeting, a triage menu answered by SIP INFO or left to time
#        out, hold music while queued and while the agent's phone rings,
#        answered calls hung up by either side, abandons, hang-ups during
#        the greeting) in load phases of --cycle seconds separated by
#        --idle seconds without calls, until --duration seconds of load;
#        then a final idle of --final-idle seconds. RSS every second,
#        /metrics every --metrics-every seconds (5); soak.py writes
#        summary.json and says PASS or FAIL (exit status 1 on FAIL):
#        zero failed calls, a plateau (--plateau-tolerance percent, 5), RSS
#        after the final idle within --idle-tolerance-mb (64) of the
#        baseline. --short = --rate 100 --duration 240 --cycle 120 --idle 60
#        --final-idle 120 (about 9 minutes; a regression check).
#        Agents: --agents (default 6 x rate: ~97 % of them ringing or
#        talking at 200 calls/s) for the main practice, --agents-b
#        (default rate / 20, at least 2) for an understaffed second
#        practice that half of the abandoning callers call.
# callbacks: callbacks that keep the caller's place, under load (one
#        engine, one --rate). genconf.py --callbacks: the practice offers the
#        callback (digit 2, 3 tries 1 minute apart), the trunk's outbound
#        gateway is a SIPp UAS (sipp/cb_gateway.xml) that answers and hangs
#        up after --hold-ms (or refuses --gw-busy percent of the tries with
#        486). The carrier (sipp/cb_carrier.xml) calls at --rate for
#        --duration s; --share percent of the callers (30) press 2, then 1
#        a second later (SIP INFO), and wait for the engine's BYE; the others
#        hang up --queue-delay s + --hold-ms after the answer. Every call
#        waits --queue-delay s (5) before an agent can be offered it (the
#        callback digit only works while no agent rings): the first routing
#        step is a pool whose only agent never registers. --agents N
#        (default rate x (hold + 1 s) + 20) answer everything (sipp/agent.xml)
#        and hang up when the engine does. After the last call, waits until
#        permanence_callbacks_pending is 0 (at most --drain-timeout s, 120;
#        a refused try is retried a minute later), then callbacks.py writes
#        summary.json and says PASS (every callback requested is completed,
#        failed, cancelled or handled, none pending, the records agree with
#        the metrics, one gateway INVITE per try) or FAIL (exit status 1).
#        Engine log: ENGINE_RUST_LOG defaults to
#        "warn,permanence_engine::callbacks=info" here (one line per request,
#        try and completion).
#
# webrtc: the media mode with browser telesecretaries (issue 11): the agents
#        are webrtc_agents (benches/load/webrtc_agents.rs, built with cargo
#        in release): N agents on SIP over WebSocket (the engine's
#        listen_ws, max_connections_per_source raised to let them in from
#        127.0.0.1), each call answered by a WebRTC peer (ICE, DTLS-SRTP)
#        whose decrypted audio goes to an RTP endpoint of the client; the
#        same client plays the callers (the SIPp carrier's SDP points at
#        it), like rtpload in media mode. For each --calls value (a comma
#        list): --calls bridged calls set up at --setup-rate, measured for
#        --measure seconds once all flow both ways: loss and latency per
#        direction, engine CPU per call, engine RSS and heap per call
#        (footprint.py; "steady" needs --measure above 35 s), the client's
#        CPU. --compare runs the plain media mode with the same number of
#        calls first (same machine, same method: the RTP bridge figure the
#        WebRTC one is compared with). --client-threads: the client's tokio
#        worker threads (2).
#
# Options for all modes: --out DIR (default /tmp/permanence-load-<date>),
# --no-build (use PERMANENCE_BIN or the existing binary), --perf (profile the
# engine with `perf record -g` for up to 15 s of the steady phase; writes
# perf.data and perf.txt in the run directory), --idle-after S (keep the
# engine running S seconds after the last call, default 5, to see whether
# its RSS comes back down), --wait-quiet S (before each run, wait up to S
# seconds for the machine to be idle: under 0.3 busy cores for 6 s; the
# figures are only comparable between quiet runs), --rtp-range MIN-MAX
# (engine RTP ports, default 10000-19999: outside the kernel's ephemeral
# range and outside the 20000-40000 range the integration tests use, so a
# test suite running at the same time cannot send stray RTP into our legs;
# each bridged call holds 2 even ports), --flood R (rate mode: a stranger,
# 127.0.0.1 is the trunk and 127.0.0.2 is not, sends R INVITEs/s for the
# whole run; memsummary.py prints what the gate did with them), --max-calls
# N and --max-heap-mb M
# (the engine's [sip.limits] caps; the generated config sets 100000 calls
# and 16384 MB so that the caps do not bite unless asked). Environment: CARGO_TARGET_DIR (default <repo>/target),
# PERMANENCE_BIN (skip the build and use this binary), ENGINE_RUST_LOG (engine
# log filter, default "warn": info logs every call event and costs CPU),
# PERF_DELAY (rate mode: seconds after the start before profiling),
# PERF_FREQ (default 299 Hz), PERF_CALLGRAPH (default dwarf,16384).
#
# Needs: sipp (Debian/Ubuntu package "sip-tester"; this script installs
# nothing), python3, rustc and cargo. Every process is started by this
# script, bounded with `timeout`, and stopped by its PID.

set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
MODE="${1:-}"
shift || true

RATES="500,1000"
DURATION=30
HOLD_MS=1000
AGENTS=""
CALLS=1000
SETUP_RATE=100
MEASURE=30
SETTLE=3
RTP_MIN=10000
RTP_MAX=19999
OUT=""
BUILD=1
PERF=0
IDLE_AFTER=5
WAIT_QUIET=0
RATE_SET=0
DURATION_SET=0
CYCLE=600
IDLE=120
FINAL_IDLE=120
BASELINE=20
METRICS_EVERY=5
PLATEAU_TOL=5
IDLE_TOL_MB=64
FLOOD=0
SHARE=30
QUEUE_DELAY=5
GW_BUSY=0
DRAIN_TIMEOUT=120
MEASURE_SET=0
COMPARE=0
CLIENT_THREADS=2
while [ $# -gt 0 ]; do
    case "$1" in
        --rate) RATES="$2"; RATE_SET=1; shift 2 ;;
        --duration) DURATION="$2"; DURATION_SET=1; shift 2 ;;
        --cycle) CYCLE="$2"; shift 2 ;;
        --idle) IDLE="$2"; shift 2 ;;
        --final-idle) FINAL_IDLE="$2"; shift 2 ;;
        --baseline) BASELINE="$2"; shift 2 ;;
        --metrics-every) METRICS_EVERY="$2"; shift 2 ;;
        --plateau-tolerance) PLATEAU_TOL="$2"; shift 2 ;;
        --idle-tolerance-mb) IDLE_TOL_MB="$2"; shift 2 ;;
        --short) RATES=100; RATE_SET=1; DURATION=240; DURATION_SET=1; CYCLE=120; IDLE=60; FINAL_IDLE=120; shift ;;
        --hold-ms) HOLD_MS="$2"; shift 2 ;;
        --agents) AGENTS="$2"; shift 2 ;;
        --agents-b) AGENTS_B="$2"; shift 2 ;;
        --calls) CALLS="$2"; shift 2 ;;
        --setup-rate) SETUP_RATE="$2"; shift 2 ;;
        --measure) MEASURE="$2"; MEASURE_SET=1; shift 2 ;;
        --settle) SETTLE="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --rtp-range) RTP_MIN="${2%-*}"; RTP_MAX="${2#*-}"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --perf) PERF=1; shift ;;
        --idle-after) IDLE_AFTER="$2"; shift 2 ;;
        --wait-quiet) WAIT_QUIET="$2"; shift 2 ;;
        --flood) FLOOD="$2"; shift 2 ;;
        --share) SHARE="$2"; shift 2 ;;
        --queue-delay) QUEUE_DELAY="$2"; shift 2 ;;
        --gw-busy) GW_BUSY="$2"; shift 2 ;;
        --drain-timeout) DRAIN_TIMEOUT="$2"; shift 2 ;;
        --max-calls) GENCONF_EXTRA="${GENCONF_EXTRA:-} --max-calls $2"; shift 2 ;;
        --max-heap-mb) GENCONF_EXTRA="${GENCONF_EXTRA:-} --max-heap-mb $2"; shift 2 ;;
        --compare) COMPARE=1; shift ;;
        --client-threads) CLIENT_THREADS="$2"; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
case "$MODE" in
    rate|media|queue) ;;
    webrtc) [ "$MEASURE_SET" = 1 ] || MEASURE=45 ;;
    soak)
        [ "$RATE_SET" = 1 ] || RATES=200
        [ "$DURATION_SET" = 1 ] || DURATION=3600
        case "$RATES" in *,*) echo "soak: one --rate only" >&2; exit 2 ;; esac
        ;;
    callbacks)
        [ "$RATE_SET" = 1 ] || RATES=20
        [ "$DURATION_SET" = 1 ] || DURATION=60
        case "$RATES" in *,*) echo "callbacks: one --rate only" >&2; exit 2 ;; esac
        [ "$QUEUE_DELAY" -ge 3 ] || { echo "callbacks: --queue-delay must be at least 3 (the callers press 2 then 1 within 2 s)" >&2; exit 2; }
        ;;
    *) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 2 ;;
esac

# --- Tools ---------------------------------------------------------------
need() {
    command -v "$1" >/dev/null 2>&1 || { echo "missing: $1. $2" >&2; exit 1; }
}
need sipp "Install it with: apt-get install -y sip-tester"
need python3 "Install python3."
need rustc "Install a Rust toolchain (rustup)."
need timeout "Install coreutils."
[ "$PERF" = 0 ] || need perf "Install it with: apt-get install -y linux-perf (Debian) or linux-tools-generic (Ubuntu)."

OUT="${OUT:-/tmp/permanence-load-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
echo "results in $OUT"

if [ -n "${PERMANENCE_BIN:-}" ]; then
    BIN="$PERMANENCE_BIN"
else
    TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
    BIN="$TARGET/release/permanence"
    if [ "$BUILD" = 1 ]; then
        need cargo "Install a Rust toolchain (rustup)."
        echo "building the engine (cargo build --release -p permanence, target $TARGET)"
        (cd "$REPO" && CARGO_TARGET_DIR="$TARGET" cargo build --release -p permanence --quiet)
    fi
fi
[ -x "$BIN" ] || { echo "no engine binary at $BIN" >&2; exit 1; }
rustc -O --edition 2021 "$HERE/rtpload.rs" -o "$OUT/rtpload"
if [ "$MODE" = webrtc ]; then
    WA_TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
    WA_BIN="${WEBRTC_AGENTS_BIN:-$WA_TARGET/release/webrtc_agents}"
    if [ "$BUILD" = 1 ] && [ -z "${WEBRTC_AGENTS_BIN:-}" ]; then
        echo "building the load client (cargo build --release -p permanence-benches --bin webrtc_agents)"
        (cd "$REPO" && CARGO_TARGET_DIR="$WA_TARGET" cargo build --release -p permanence-benches \
            --bin webrtc_agents --quiet)
    fi
    [ -x "$WA_BIN" ] || { echo "no load client at $WA_BIN" >&2; exit 1; }
fi

# File descriptors: every RTP leg is a socket.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 8192 ]; then
    echo "warning: ulimit -n is $(ulimit -n); large runs need more" >&2
fi

# --- Process bookkeeping -------------------------------------------------
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true
    done
    sleep 0.5
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true
    done
    PIDS=()
}
trap cleanup EXIT INT TERM

stop_pid() { # PID [seconds]
    local p="$1" t="${2:-10}" i
    kill -TERM "$p" 2>/dev/null || return 0
    for ((i = 0; i < t * 10; i++)); do
        kill -0 "$p" 2>/dev/null || { wait "$p" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
}

wait_pid() { # PID seconds -> 0 if it exited in time
    local p="$1" t="$2" i
    for ((i = 0; i < t * 10; i++)); do
        kill -0 "$p" 2>/dev/null || { wait "$p" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    return 1
}

# Free ports (UDP and TCP) for SIP and the peers, below the RTP range.
free_ports() { # COUNT
    python3 - "$1" <<'EOF'
import random, socket, sys
n = int(sys.argv[1]); got = []
while len(got) < n:
    p = random.randrange(6000, 9900)
    if p in got: continue
    try:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", p))
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM); t.bind(("127.0.0.1", p))
        u.close(); t.close(); got.append(p)
    except OSError:
        pass
print(" ".join(map(str, got)))
EOF
}

now() { python3 -c 'import time; print(f"{time.time():.3f}")'; }

machine_info() {
    echo "\"cores\": $(nproc), \"mem_gib\": $(awk '/MemTotal/ {printf "%.0f", $2/1048576}' /proc/meminfo), \"kernel\": \"$(uname -r)\", \"sipp\": \"$(sipp -v 2>&1 | grep -o 'v[0-9.]*' | head -1)\", \"commit\": \"$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)\""
}

# Waits (up to WAIT_QUIET seconds) until other processes leave the machine
# idle; records the busy cores seen last.
wait_quiet() {
    [ "$WAIT_QUIET" -gt 0 ] || return 0
    python3 - "$WAIT_QUIET" <<'EOF2'
import os, sys, time
def busy():
    # CPU time of every process (children included once reaped): /proc/stat
    # undercounts on these VMs.
    t = 0
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                st = open(f"/proc/{d}/stat").read()
                r = st[st.rindex(")") + 2:].split()
                t += int(r[11]) + int(r[12]) + int(r[13]) + int(r[14])
            except (OSError, ValueError, IndexError):
                pass
    return t
hz = float(os.sysconf('SC_CLK_TCK'))
deadline = time.time() + float(sys.argv[1])
calm = 0
while True:
    a = busy(); time.sleep(2); b = busy()
    cores = (b - a) / hz / 2
    calm = calm + 1 if cores < 0.3 else 0
    if calm >= 3:
        print(f"machine quiet ({cores:.2f} busy cores)", file=sys.stderr); break
    if time.time() > deadline:
        print(f"warning: machine still busy ({cores:.2f} cores used by other processes)", file=sys.stderr); break
EOF2
}

# Starts the engine on a generated configuration and registers the agents.
# Sets RD (run dir), ENGINE_PID (the engine itself), SIP_PORT, AGENT_PORT,
# CARRIER_PORT, RTP_A, RTP_B.
start_engine() { # RUNDIR AGENTS
    RD="$1"
    local agents="$2"
    mkdir -p "$RD"
    wait_quiet
    read -r SIP_PORT HTTP_PORT AGENT_PORT CARRIER_PORT RTP_A RTP_B <<<"$(free_ports 6)"
    # shellcheck disable=SC2086 # GENCONF_EXTRA and ENGINE_EXTRA are word lists
    python3 "$HERE/genconf.py" "$RD" --agents "$agents" --sip-port "$SIP_PORT" \
        --http-port "$HTTP_PORT" --rtp-min "$RTP_MIN" --rtp-max "$RTP_MAX" \
        --max-expires "${REG_EXPIRES:-7200}" ${GENCONF_EXTRA:-} >/dev/null
    # shellcheck disable=SC2086
    RUST_LOG="${ENGINE_RUST_LOG:-warn}" timeout -k 5 "${ENGINE_LIMIT:-3600}" "$BIN" run \
        --config "$RD/permanence.toml" --log-format json ${ENGINE_EXTRA:-} >"$RD/engine.log" 2>&1 &
    local tpid=$!
    PIDS+=("$tpid")
    ENGINE_TIMEOUT_PID=$tpid
    sleep 0.3
    ENGINE_PID="$(pgrep -P "$tpid" | head -1 || true)"
    [ -n "$ENGINE_PID" ] || { echo "engine did not start:" >&2; cat "$RD/engine.log" >&2; exit 1; }
    [ "${NO_REGISTER:-0}" = 1 ] ||
        python3 "$HERE/register.py" "127.0.0.1:$SIP_PORT" "$AGENT_PORT" "$RD/agents.txt" \
            --expires "${REG_EXPIRES:-7200}" --timeout 60
}

# Samples the engine's /metrics every second into RUNDIR/metrics.csv (for
# footprint.py); prints the sampler's PID.
start_metricsmon() { # RUNDIR SECONDS
    timeout -k 5 "$2" python3 "$HERE/metricsmon.py" "$1/metrics.csv" \
        --url "http://127.0.0.1:$HTTP_PORT/metrics" --interval 1 >/dev/null 2>&1 &
    echo $!
}

# Saves /metrics and keeps the engine idle for IDLE_AFTER seconds.
engine_epilogue() {
    sleep "$IDLE_AFTER"
    python3 - "$HTTP_PORT" "$RD/metrics.txt" <<'EOF2' || true
import sys, urllib.request
try:
    body = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read()
    open(sys.argv[2], "wb").write(body)
except Exception as e:
    print(f"could not read /metrics: {e}", file=sys.stderr)
EOF2
}

# Stops the engine; records in $RD/engine_exit whether it was still alive
# (a crash during the run shows as "died <status>").
stop_engine() {
    if kill -0 "$ENGINE_PID" 2>/dev/null; then
        echo "alive at end of run" >"$RD/engine_exit"
        local t0s t1s
        t0s="$(now)"
        stop_pid "$ENGINE_TIMEOUT_PID" 30
        t1s="$(now)"
        python3 -c "import sys; print(f'; stopped {float(sys.argv[2]) - float(sys.argv[1]):.1f} s after SIGTERM (SIGKILL at 30 s)')" "$t0s" "$t1s" >>"$RD/engine_exit"
    else
        local st=0
        wait "$ENGINE_TIMEOUT_PID" 2>/dev/null || st=$?
        echo "died during the run, exit status $st" >"$RD/engine_exit"
        echo "ENGINE DIED during the run (exit status $st; see $RD/engine.log)" >&2
    fi
}

# Profiles the engine for SECONDS after DELAY seconds (background job).
profile_engine() { # RUNDIR DELAY SECONDS [WAIT_FILE WAIT_WORD]
    local rd="$1" delay="$2" secs="$3" f="${4:-}" w="${5:-}" i
    if [ -n "$f" ]; then
        for ((i = 0; i < 600; i++)); do
            grep -q "$w" "$f" 2>/dev/null && break
            sleep 0.5
        done
    fi
    sleep "$delay"
    # The release binary has no frame pointers: unwind with DWARF.
    timeout -k 5 $((secs + 30)) perf record -F "${PERF_FREQ:-299}" \
        --call-graph "${PERF_CALLGRAPH:-dwarf,16384}" -p "$ENGINE_PID" -o "$rd/perf.data" \
        -- sleep "$secs" >"$rd/perf_record.log" 2>&1 || true
    {
        echo "# perf report --no-children --sort dso"
        perf report -i "$rd/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep -v '^$' | head -20
        echo "# perf report --no-children --sort symbol (top 60)"
        perf report -i "$rd/perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null | grep -v '^$' | head -70
        echo "# perf report --children --sort symbol (top 60, inclusive)"
        perf report -i "$rd/perf.data" --children --sort symbol --stdio -g none 2>/dev/null | grep -v '^$' | head -70
    } >"$rd/perf.txt"
}

# Socket groups whose receive queues procmon samples.
port_groups() {
    echo "--ports engine_rtp=$RTP_MIN-$RTP_MAX --ports engine_sip=$SIP_PORT-$SIP_PORT" \
        "--ports peer_caller_rtp=$RTP_A-$RTP_A --ports peer_agent_rtp=$RTP_B-$RTP_B" \
        "--ports sipp_agent=$AGENT_PORT-$AGENT_PORT --ports sipp_carrier=$CARRIER_PORT-$CARRIER_PORT"
}

write_meta() { # RUNDIR JSON-fields
    echo "{ \"mode\": \"$MODE\", $2, $(machine_info), \"binary\": \"$BIN\", \"binary_sha256\": \"$(sha256sum "$BIN" | cut -c1-16)\", \"idle_after_s\": $IDLE_AFTER, \"date\": \"$(date -Iseconds)\" }" >"$1/meta.json"
}

run_rate() { # RATE
    local rate="$1"
    local calls=$((rate * DURATION))
    local agents="${AGENTS:-$((rate * (HOLD_MS + 500) / 1000 + 200))}"
    local rd="$OUT/rate-$rate"
    echo "=== rate $rate calls/s for ${DURATION}s ($calls calls), hold ${HOLD_MS} ms, $agents agents"
    start_engine "$rd" "$agents"
    local limit=$((DURATION + HOLD_MS / 1000 + 90))
    local mm
    mm="$(start_metricsmon "$rd" "$((limit + IDLE_AFTER + 30))")"
    PIDS+=("$mm")
    # Hold audio and prompts go to sinks (the SIPp peers send no RTP here).
    "$OUT/rtpload" sink --port "$RTP_A" --seconds "$limit" >"$rd/sink_caller.json" &
    PIDS+=("$!"); local sink_a=$!
    "$OUT/rtpload" sink --port "$RTP_B" --seconds "$limit" >"$rd/sink_agent.json" &
    PIDS+=("$!"); local sink_b=$!
    (cd "$rd" && exec timeout -k 5 "$limit" sipp -sf "$HERE/sipp/agent.xml" -i 127.0.0.1 \
        -p "$AGENT_PORT" -m "$calls" -nostdin -set rtp_port "$RTP_B" -buff_size 8388608 \
        -trace_stat -stf agent_stat.csv -fd 1 -trace_logs -log_file agent_logs.log \
        -trace_err -error_file agent_err.log >agent_screen.log 2>&1) &
    PIDS+=("$!"); local agent=$!
    sleep 0.5
    local sipp_agent_pid
    sipp_agent_pid="$(pgrep -P "$agent" | head -1 || true)"
    python3 "$HERE/procmon.py" "$rd/procmon.csv" --interval 0.5 $(port_groups) engine="$ENGINE_PID" \
        sipp_agent="${sipp_agent_pid:-0}" sink_caller="$sink_a" sink_agent="$sink_b" &
    PIDS+=("$!"); local mon=$!
    sleep 1
    local t0
    t0="$(now)"
    (cd "$rd" && exec timeout -k 5 "$limit" sipp "127.0.0.1:$SIP_PORT" -sf "$HERE/sipp/carrier.xml" \
        -i 127.0.0.1 -p "$CARRIER_PORT" -r "$rate" -m "$calls" -l $((rate * 30)) -d "$HOLD_MS" \
        -nostdin -set called +33980000099 -set rtp_port "$RTP_A" -recv_timeout 15000 \
        -buff_size 8388608 -trace_stat -stf carrier_stat.csv -fd 1 \
        -trace_logs -log_file carrier_logs.log -trace_err -error_file carrier_err.log \
        >carrier_screen.log 2>&1) &
    local carrier=$!
    PIDS+=("$carrier")
    local flood=""
    if [ "$FLOOD" -gt 0 ]; then
        # A stranger (127.0.0.2, not a trunk) floods the SIP port with
        # INVITEs for the whole run: SIPp's built-in UAC, no retransmission.
        local fport
        fport="$(free_ports 1)"
        (cd "$rd" && exec timeout -k 5 "$limit" sipp "127.0.0.1:$SIP_PORT" -sn uac -i 127.0.0.2 \
            -p "$fport" -r "$FLOOD" -m $((FLOOD * DURATION)) -l $((FLOOD * 3)) -max_retrans 0 \
            -recv_timeout 1000 -nostdin -buff_size 8388608 -trace_stat -stf flood_stat.csv -fd 1 \
            >flood_screen.log 2>&1) &
        flood=$!
        PIDS+=("$flood")
    fi
    if [ "$PERF" = 1 ]; then
        local psecs=$((DURATION - HOLD_MS / 1000 - 4))
        [ "$psecs" -gt 15 ] && psecs=15
        [ "$psecs" -lt 2 ] && psecs=2
        profile_engine "$rd" "${PERF_DELAY:-$((HOLD_MS / 1000 + 2))}" "$psecs" &
        PERF_JOB=$!
        PIDS+=("$PERF_JOB")
    fi
    sleep 0.3
    local sipp_carrier_pid
    sipp_carrier_pid="$(pgrep -P "$carrier" | head -1 || true)"
    # A second monitor for the carrier (started after it).
    python3 "$HERE/procmon.py" "$rd/procmon_carrier.csv" --interval 0.5 \
        sipp_carrier="${sipp_carrier_pid:-0}" &
    PIDS+=("$!"); local mon2=$!
    wait "$carrier" || true
    local t1
    t1="$(now)"
    [ -z "$flood" ] || wait_pid "$flood" 15 || stop_pid "$flood" 5
    # The agent side exits after its last call; give it a few seconds.
    wait_pid "$agent" 15 || stop_pid "$agent" 5
    stop_pid "$sink_a" 2; stop_pid "$sink_b" 2
    [ -z "${PERF_JOB:-}" ] || wait_pid "$PERF_JOB" 180 || true
    PERF_JOB=""
    engine_epilogue
    stop_pid "$mon" 3; stop_pid "$mon2" 3; stop_pid "$mm" 3
    cat "$rd/procmon_carrier.csv" >>"$rd/procmon.csv"
    stop_engine
    python3 "$HERE/memsummary.py" "$rd" | sed 's/^/  /' || true
    write_meta "$rd" "\"rate\": $rate, \"duration_s\": $DURATION, \"calls\": $calls, \"hold_ms\": $HOLD_MS, \"agents\": $agents, \"t_carrier_start\": $t0, \"t_carrier_end\": $t1"
    python3 "$HERE/analyze.py" "$rd" >"$rd/summary.txt"
    python3 - "$rd/summary.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
c, a, l = s["carrier"], s["agent"], s["latency"]
cpu = s.get("cpu_steady", {})
def cores(k):
    v = cpu.get(k) or {}
    return v.get("cores")
r = l.get("invite_to_agent_invite") or {}
q = l.get("invite_to_200_at_carrier") or {}
print(f"rate {s['meta']['rate']}/s: carrier {c['successful']}/{c['created']} ok, {c['failed']} failed "
      f"(retrans {c['retransmissions']}); agent {a['successful']}/{a['incoming']} ok, {a['failed']} failed; "
      f"zero failed: {s['zero_failed_calls']}")
print(f"  INVITE->agent INVITE p50 {r.get('p50_ms')} ms p99 {r.get('p99_ms')} ms max {r.get('max_ms')} ms; "
      f"INVITE->200 p50 {q.get('p50_ms')} ms p99 {q.get('p99_ms')} ms")
print(f"  CPU (cores, steady): engine {cores('engine')}, sipp carrier {cores('sipp_carrier')}, "
      f"sipp agent {cores('sipp_agent')}, other processes {cores('other_processes_on_machine')}; "
      f"engine {s.get('engine_cpu_ms_per_call')} ms CPU/call")
print(f"  engine RSS {s.get('engine_rss_kb')} kB; engine {s.get('engine_exit')}; "
      f"warn lines {s['engine_log']['warn_or_error_lines']}")
q = s.get("udp_queues_steady", {})
print("  socket queues (mean/max bytes waiting): " + ", ".join(
      f"{k} {v['queued_bytes_mean']}/{v['queued_bytes_max']}" + (f" drops {v['drops']}" if v['drops'] else "")
      for k, v in q.items()))
if c["failures"] or a["failures"]:
    print(f"  failures: carrier {c['failures']} agent {a['failures']}")
EOF
}

run_media() {
    local calls="$CALLS"
    local agents="${AGENTS:-$((calls + calls / 10 + 10))}"
    local rd="$OUT/media-$calls"
    local setup_s=$(((calls + SETUP_RATE - 1) / SETUP_RATE))
    local hold_s=$((setup_s + SETTLE + MEASURE + 30))
    local limit=$((setup_s + hold_s + 120))
    echo "=== media: $calls bridged calls (set up at $SETUP_RATE/s), $agents agents, measure ${MEASURE}s"
    start_engine "$rd" "$agents"
    local mm
    mm="$(start_metricsmon "$rd" "$limit")"
    PIDS+=("$mm")
    "$OUT/rtpload" media --caller-port "$RTP_A" --agent-port "$RTP_B" --calls "$calls" \
        --max-wait $((setup_s + 10)) --settle "$SETTLE" --measure "$MEASURE" \
        --linger $((hold_s + setup_s)) >"$rd/rtpload.json" 2>"$rd/rtpload.log" &
    local rtp=$!
    PIDS+=("$rtp")
    if [ "$PERF" = 1 ]; then
        local psecs=$MEASURE
        [ "$psecs" -gt 15 ] && psecs=15
        profile_engine "$rd" 1 "$psecs" "$rd/rtpload.log" measuring &
        PERF_JOB=$!
        PIDS+=("$PERF_JOB")
    fi
    (cd "$rd" && exec timeout -k 5 "$limit" sipp -sf "$HERE/sipp/agent.xml" -i 127.0.0.1 \
        -p "$AGENT_PORT" -m "$calls" -nostdin -set rtp_port "$RTP_B" -buff_size 8388608 \
        -trace_stat -stf agent_stat.csv -fd 1 -trace_logs -log_file agent_logs.log \
        -trace_err -error_file agent_err.log >agent_screen.log 2>&1) &
    PIDS+=("$!"); local agent=$!
    sleep 0.5
    local sipp_agent_pid
    sipp_agent_pid="$(pgrep -P "$agent" | head -1 || true)"
    python3 "$HERE/procmon.py" "$rd/procmon.csv" --interval 0.5 $(port_groups) engine="$ENGINE_PID" \
        sipp_agent="${sipp_agent_pid:-0}" rtpload="$rtp" &
    PIDS+=("$!"); local mon=$!
    sleep 1
    local t0
    t0="$(now)"
    (cd "$rd" && exec timeout -k 5 "$limit" sipp "127.0.0.1:$SIP_PORT" -sf "$HERE/sipp/carrier.xml" \
        -i 127.0.0.1 -p "$CARRIER_PORT" -r "$SETUP_RATE" -m "$calls" -l $((calls + 10)) \
        -d $((hold_s * 1000)) -nostdin -set called +33980000099 -set rtp_port "$RTP_A" \
        -recv_timeout 15000 -buff_size 8388608 -trace_stat -stf carrier_stat.csv -fd 1 \
        -trace_logs -log_file carrier_logs.log -trace_err -error_file carrier_err.log \
        >carrier_screen.log 2>&1) &
    local carrier=$!
    PIDS+=("$carrier")
    sleep 0.3
    local sipp_carrier_pid
    sipp_carrier_pid="$(pgrep -P "$carrier" | head -1 || true)"
    python3 "$HERE/procmon.py" "$rd/procmon_carrier.csv" --interval 0.5 \
        sipp_carrier="${sipp_carrier_pid:-0}" &
    PIDS+=("$!"); local mon2=$!
    wait "$carrier" || true
    local t1
    t1="$(now)"
    wait_pid "$agent" 20 || stop_pid "$agent" 5
    stop_pid "$rtp" 5
    [ -z "${PERF_JOB:-}" ] || wait_pid "$PERF_JOB" 180 || true
    PERF_JOB=""
    engine_epilogue
    stop_pid "$mon" 3; stop_pid "$mon2" 3; stop_pid "$mm" 3
    cat "$rd/procmon_carrier.csv" >>"$rd/procmon.csv"
    stop_engine
    write_meta "$rd" "\"calls\": $calls, \"setup_rate\": $SETUP_RATE, \"measure_s\": $MEASURE, \"hold_s\": $hold_s, \"agents\": $agents, \"t_carrier_start\": $t0, \"t_carrier_end\": $t1"
    python3 "$HERE/footprint.py" "$rd" --calls "$calls" --kind bridged || true
    python3 "$HERE/analyze.py" "$rd" >"$rd/summary.txt"
    print_media_summary "$rd"
}

# Prints the media/webrtc summary of a run directory.
print_media_summary() { # RUNDIR
    python3 - "$1/summary.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
rt = s.get("rtp") or {}
c, a = s["carrier"], s["agent"]
if s["meta"]["mode"] == "webrtc":
    sip = rt.get("sip") or {}
    agent_ok = f"browser agents registered {sip.get('registered')}, answered {sip.get('answered')}, peers connected {sip.get('peers_connected')}, answer failures {sip.get('answer_failed')}"
else:
    agent_ok = f"agent {a['successful']}/{a['incoming']} ok"
print(f"calls: carrier {c['successful']}/{c['created']} ok, {agent_ok}; "
      f"established {rt.get('established')} ({rt.get('bridged_streams')})")
for d in ("caller_to_agent", "agent_to_caller"):
    x = rt.get(d) or {}
    lat = x.get("latency_us") or {}
    print(f"  {d}: sent {x.get('sent')} received {x.get('received')} lost {x.get('lost')} "
          f"({x.get('streams_with_loss')} streams with loss); relay latency p50 {lat.get('p50')} us "
          f"p99 {lat.get('p99')} us max {lat.get('max')} us")
cpu = s.get("cpu_window", {})
print(f"  packets/s through the engine: in {rt.get('pps_sent_by_endpoints')} out {rt.get('pps_received_by_endpoints')} "
      f"(window {rt.get('window_s')} s, drain {rt.get('drain_s')} s; generator late ticks {rt.get('late_ticks')})")
m = s.get("metrics", {})
print("  engine metrics: " + ", ".join(f"{k.replace('permanence_rtp_', '')} {int(v)}" for k, v in m.items() if k.startswith("permanence_rtp_")))
print(f"  CPU (cores): " + ", ".join(f"{k} {(v or {}).get('cores')}" for k, v in cpu.items()))
print(f"  engine: {s.get('engine_cpu_per_call_pct_of_core')} % of a core per call, "
      f"{s.get('engine_cpu_us_per_packet_relayed')} us CPU per relayed packet; RSS {s.get('engine_rss_kb')} kB")
print(f"  kernel UDP in window: {s.get('kernel_udp_in_window')}")
q = s.get("udp_queues_window", {})
print("  socket queues (mean/max bytes waiting): " + ", ".join(
      f"{k} {v['queued_bytes_mean']}/{v['queued_bytes_max']}" + (f" drops {v['drops']}" if v['drops'] else "")
      for k, v in q.items()))
fp = s.get("footprint") or {}
if fp:
    print(f"  engine memory per call (footprint.py): heap early {fp.get('heap_early_per_call_kib')} KiB, "
          f"steady {fp.get('heap_steady_per_call_kib')} KiB; RSS early {fp.get('rss_early_per_call_kib')} KiB, "
          f"steady {fp.get('rss_steady_per_call_kib')} KiB")
if s.get("client"):
    print(f"  load client: {s['client']}")
print(f"  engine {s.get('engine_exit')}; zero loss: {s.get('zero_loss')}")
EOF
}

# The engine's resident set now, in MB.
rss_mb() {
    awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$ENGINE_PID/status" 2>/dev/null || echo "?"
}

# Soak: one engine, load phases and idle phases (see the header).
run_queue() {
    local calls="$CALLS"
    local rd="$OUT/queue-$calls"
    local setup_s=$(((calls + SETUP_RATE - 1) / SETUP_RATE))
    local hold_s=$((setup_s + SETTLE + MEASURE + 5))
    local limit=$((setup_s + hold_s + 120))
    echo "=== queue: $calls calls waiting in queue with hold music (set up at $SETUP_RATE/s), measure ${MEASURE}s"
    # One agent, never registered: every call waits in the queue (max wait
    # 600 s) and hears the greeting, then hold music. The carrier sends no
    # RTP: keep the media timeout from ending the waits.
    NO_REGISTER=1 ENGINE_EXTRA="--rtp-timeout-s 600" start_engine "$rd" 1
    local mm
    mm="$(start_metricsmon "$rd" "$limit")"
    PIDS+=("$mm")
    "$OUT/rtpload" sink --port "$RTP_A" --seconds "$limit" >"$rd/sink_caller.json" &
    PIDS+=("$!"); local sink=$!
    # shellcheck disable=SC2046 # port_groups is a word list
    python3 "$HERE/procmon.py" "$rd/procmon.csv" --interval 0.5 $(port_groups) engine="$ENGINE_PID" \
        sink_caller="$sink" &
    PIDS+=("$!"); local mon=$!
    sleep 3
    local t0 t1
    t0="$(now)"
    (cd "$rd" && exec timeout -k 5 "$limit" sipp "127.0.0.1:$SIP_PORT" -sf "$HERE/sipp/carrier.xml" \
        -i 127.0.0.1 -p "$CARRIER_PORT" -r "$SETUP_RATE" -m "$calls" -l $((calls + 10)) \
        -d $((hold_s * 1000)) -nostdin -set called +33980000099 -set rtp_port "$RTP_A" \
        -recv_timeout 15000 -buff_size 8388608 -trace_stat -stf carrier_stat.csv -fd 1 \
        -trace_err -error_file carrier_err.log >carrier_screen.log 2>&1) &
    local carrier=$!
    PIDS+=("$carrier")
    wait "$carrier" || true
    t1="$(now)"
    engine_epilogue
    stop_pid "$sink" 3; stop_pid "$mon" 3; stop_pid "$mm" 3
    stop_engine
    write_meta "$rd" "\"calls\": $calls, \"setup_rate\": $SETUP_RATE, \"measure_s\": $MEASURE, \"hold_s\": $hold_s, \"t_carrier_start\": $t0, \"t_carrier_end\": $t1"
    python3 "$HERE/footprint.py" "$rd" --calls "$calls" --kind queued || true
    python3 "$HERE/sippstat.py" "$rd/carrier_stat.csv" || true
}

run_soak() {
    local rate="$RATES"
    local agents="${AGENTS:-$((rate * 6))}"
    local agents_b="${AGENTS_B:-$((rate / 20 > 2 ? rate / 20 : 2))}"
    local cycles=$(((DURATION + CYCLE - 1) / CYCLE))
    local rd="$OUT/soak-$rate"
    # Upper bound of the run: each load phase drains in well under 150 s
    # (the longest call script is ~30 s plus the queue wait).
    local total=$((BASELINE + DURATION + cycles * 150 + (cycles - 1) * IDLE + FINAL_IDLE + 60))
    echo "=== soak: $rate calls/s, $DURATION s of load in $cycles phase(s) of up to $CYCLE s," \
        "idle $IDLE s between, final idle $FINAL_IDLE s, $agents agents + $agents_b for the" \
        "understaffed practice (at most $total s)"
    ENGINE_LIMIT=$((total + 120))
    REG_EXPIRES=$((total + 600 > 7200 ? total + 600 : 7200))
    GENCONF_EXTRA="--soak --agents-b $agents_b"
    # The SIPp peers send no RTP (they only receive the prompts, hold music
    # and nothing while bridged): keep the engine's media timeout (60 s by
    # default) from ending long queue waits; every call script is shorter.
    ENGINE_EXTRA="--rtp-timeout-s 600"
    start_engine "$rd" "$((agents + agents_b))"
    : >"$rd/phases.csv"
    "$OUT/rtpload" sink --port "$RTP_A" --seconds "$total" >"$rd/sink_caller.json" &
    PIDS+=("$!"); local sink_a=$!
    "$OUT/rtpload" sink --port "$RTP_B" --seconds "$total" >"$rd/sink_agent.json" &
    PIDS+=("$!"); local sink_b=$!
    (cd "$rd" && exec timeout -k 5 "$total" sipp -sf "$HERE/sipp/soak_agent.xml" -i 127.0.0.1 \
        -p "$AGENT_PORT" -nostdin -set rtp_port "$RTP_B" -buff_size 8388608 \
        -trace_stat -stf agent_stat.csv -fd 5 -trace_err -error_file agent_err.log \
        -max_log_size 20000000 \
        >agent_screen.log 2>&1) &
    PIDS+=("$!"); local agent=$!
    sleep 0.5
    local sipp_agent_pid
    sipp_agent_pid="$(pgrep -P "$agent" | head -1 || true)"
    if [ -z "$sipp_agent_pid" ] || ! kill -0 "$sipp_agent_pid" 2>/dev/null; then
        echo "the SIPp agent did not start:" >&2
        cat "$rd/agent_screen.log" "$rd/agent_err.log" >&2 2>/dev/null || true
        exit 1
    fi
    python3 "$HERE/procmon.py" "$rd/procmon.csv" --interval 1 $(port_groups) engine="$ENGINE_PID" \
        sipp_agent="${sipp_agent_pid:-0}" sink_caller="$sink_a" sink_agent="$sink_b" &
    PIDS+=("$!"); local mon=$!
    timeout -k 5 "$total" python3 "$HERE/metricsmon.py" "$rd/metrics.csv" \
        --url "http://127.0.0.1:$HTTP_PORT/metrics" --interval "$METRICS_EVERY" &
    PIDS+=("$!"); local mmon=$!
    local t_start t0 t1 t2 t3 k load done_s=0 idle_s sipp_carrier_pid carrier
    t_start="$(now)"
    sleep "$BASELINE"
    t0="$(now)"
    echo "baseline,0,$t_start,$t0" >>"$rd/phases.csv"
    echo "--- baseline: engine RSS $(rss_mb) MB"
    for ((k = 1; k <= cycles; k++)); do
        load=$((DURATION - done_s < CYCLE ? DURATION - done_s : CYCLE))
        echo "--- load phase $k/$cycles: $load s at $rate calls/s"
        t0="$(now)"
        (cd "$rd" && exec timeout -k 5 $((load + 240)) sipp "127.0.0.1:$SIP_PORT" \
            -sf "$HERE/sipp/soak_carrier.xml" -i 127.0.0.1 -p "$CARRIER_PORT" -r "$rate" \
            -m $((rate * load)) -l $((rate * 60)) -nostdin -set called +33980000099 \
            -set called_b +33980000098 -set rtp_port "$RTP_A" -recv_timeout 30000 -buff_size 8388608 \
            -trace_stat -stf "carrier_${k}_stat.csv" -fd 5 \
            -trace_err -error_file "carrier_${k}_err.log" >"carrier_${k}_screen.log" 2>&1) &
        carrier=$!
        PIDS+=("$carrier")
        sleep 0.3
        sipp_carrier_pid="$(pgrep -P "$carrier" | head -1 || true)"
        python3 "$HERE/procmon.py" "$rd/procmon_carrier_$k.csv" --interval 1 \
            sipp_carrier="${sipp_carrier_pid:-0}" &
        PIDS+=("$!")
        local cmon=$!
        wait "$carrier" || true
        t2="$(now)"
        t1="$(python3 -c "import sys; print(f'{min(float(sys.argv[1]) + int(sys.argv[2]), float(sys.argv[3])):.3f}')" "$t0" "$load" "$t2")"
        stop_pid "$cmon" 3
        done_s=$((done_s + load))
        echo "load,$k,$t0,$t1" >>"$rd/phases.csv"
        echo "drain,$k,$t1,$t2" >>"$rd/phases.csv"
        if [ "$k" -lt "$cycles" ]; then idle_s=$IDLE; else idle_s=$FINAL_IDLE; fi
        echo "--- idle $idle_s s (calls drained $(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t1" "$t2") s after the last new call; engine RSS $(rss_mb) MB)"
        sleep "$idle_s"
        t3="$(now)"
        echo "    end of idle: engine RSS $(rss_mb) MB"
        if [ "$k" -lt "$cycles" ]; then
            echo "idle,$k,$t2,$t3" >>"$rd/phases.csv"
        else
            echo "final_idle,$k,$t2,$t3" >>"$rd/phases.csv"
        fi
        kill -0 "$ENGINE_PID" 2>/dev/null || { echo "ENGINE DIED in phase $k" >&2; break; }
    done
    IDLE_AFTER=0
    engine_epilogue
    stop_pid "$agent" 5
    stop_pid "$sink_a" 2; stop_pid "$sink_b" 2
    stop_pid "$mmon" 3; stop_pid "$mon" 3
    for f in "$rd"/procmon_carrier_*.csv; do
        [ -e "$f" ] && cat "$f" >>"$rd/procmon.csv"
    done
    stop_engine
    write_meta "$rd" "\"rate\": $rate, \"duration_s\": $DURATION, \"cycle_s\": $CYCLE, \"idle_s\": $IDLE, \"final_idle_s\": $FINAL_IDLE, \"baseline_s\": $BASELINE, \"cycles\": $cycles, \"agents\": $agents, \"agents_b\": $agents_b, \"metrics_every_s\": $METRICS_EVERY, \"plateau_tolerance_pct\": $PLATEAU_TOL, \"idle_tolerance_mb\": $IDLE_TOL_MB, \"malloc_env\": \"$(env | grep -E '^(MIMALLOC|MALLOC)_' | tr '\n' ' ')\""
    local st=0
    python3 "$HERE/soak.py" "$rd" || st=$?
    SOAK_STATUS=$st
}

# Callbacks under load (see the header): one engine, the carrier at one
# rate, the agents, the outbound gateway; then the drain and callbacks.py.
run_callbacks() {
    local rate="$RATES"
    local calls=$((rate * DURATION))
    local agents="${AGENTS:-$((rate * (HOLD_MS + 1000) / 1000 + 20))}"
    local rd="$OUT/callbacks-$rate"
    local gw_port
    gw_port="$(free_ports 1)"
    # The longest carrier call: ~2 s of keys, then at most 60 s waiting for
    # the engine's BYE; then the drain.
    local limit=$((DURATION + 120 + DRAIN_TIMEOUT + IDLE_AFTER + 60))
    echo "=== callbacks: $rate calls/s for ${DURATION}s ($calls calls), ${SHARE} % ask for a callback," \
        "queue delay ${QUEUE_DELAY}s, hold ${HOLD_MS} ms, $agents agents, gateway busy ${GW_BUSY} %"
    ENGINE_LIMIT=$((limit + 120))
    GENCONF_EXTRA="${GENCONF_EXTRA:-} --callbacks --gateway-port $gw_port --queue-delay $QUEUE_DELAY"
    ENGINE_RUST_LOG="${ENGINE_RUST_LOG:-warn,permanence_engine::callbacks=info}"
    # The SIPp peers send no RTP: keep the media timeout from ending calls
    # that wait in the queue.
    ENGINE_EXTRA="--rtp-timeout-s 600"
    start_engine "$rd" "$agents"
    local url="http://127.0.0.1:$HTTP_PORT/metrics"
    "$OUT/rtpload" sink --port "$RTP_A" --seconds "$limit" >"$rd/sink_caller.json" &
    PIDS+=("$!"); local sink_a=$!
    # Agents and the gateway (the patients called back) share one sink.
    "$OUT/rtpload" sink --port "$RTP_B" --seconds "$limit" >"$rd/sink_agent.json" &
    PIDS+=("$!"); local sink_b=$!
    (cd "$rd" && exec timeout -k 5 "$limit" sipp -sf "$HERE/sipp/agent.xml" -i 127.0.0.1 \
        -p "$AGENT_PORT" -nostdin -set rtp_port "$RTP_B" -buff_size 8388608 \
        -trace_stat -stf agent_stat.csv -fd 1 -trace_logs -log_file agent_logs.log \
        -trace_err -error_file agent_err.log >agent_screen.log 2>&1) &
    PIDS+=("$!"); local agent=$!
    (cd "$rd" && exec timeout -k 5 "$limit" sipp -sf "$HERE/sipp/cb_gateway.xml" -i 127.0.0.1 \
        -p "$gw_port" -nostdin -set rtp_port "$RTP_B" -set busy_pct "$GW_BUSY" -d "$HOLD_MS" \
        -buff_size 8388608 -trace_stat -stf gateway_stat.csv -fd 1 -trace_logs \
        -log_file gateway_logs.log -trace_err -error_file gateway_err.log >gateway_screen.log 2>&1) &
    PIDS+=("$!"); local gateway=$!
    sleep 0.5
    local sipp_agent_pid sipp_gw_pid
    sipp_agent_pid="$(pgrep -P "$agent" | head -1 || true)"
    sipp_gw_pid="$(pgrep -P "$gateway" | head -1 || true)"
    if [ -z "$sipp_agent_pid" ] || [ -z "$sipp_gw_pid" ]; then
        echo "the SIPp agent or gateway did not start:" >&2
        cat "$rd/agent_screen.log" "$rd/agent_err.log" "$rd/gateway_screen.log" "$rd/gateway_err.log" >&2 2>/dev/null || true
        exit 1
    fi
    # shellcheck disable=SC2046 # port_groups is a word list
    python3 "$HERE/procmon.py" "$rd/procmon.csv" --interval 0.5 $(port_groups) \
        --ports "sipp_gateway=$gw_port-$gw_port" engine="$ENGINE_PID" sipp_agent="$sipp_agent_pid" \
        sipp_gateway="$sipp_gw_pid" sink_caller="$sink_a" sink_agent="$sink_b" &
    PIDS+=("$!"); local mon=$!
    timeout -k 5 "$limit" python3 "$HERE/callbacks.py" watch "$url" "$rd/progress.csv" --interval 1 &
    PIDS+=("$!"); local watch=$!
    sleep 1
    local t0 t1 t2
    t0="$(now)"
    (cd "$rd" && exec timeout -k 5 $((DURATION + 120)) sipp "127.0.0.1:$SIP_PORT" \
        -sf "$HERE/sipp/cb_carrier.xml" -i 127.0.0.1 -p "$CARRIER_PORT" -r "$rate" -m "$calls" \
        -l $((rate * 90 + 10)) -d $((QUEUE_DELAY * 1000 + HOLD_MS)) -nostdin \
        -set called +33980000099 -set rtp_port "$RTP_A" -set share "$SHARE" -recv_timeout 30000 \
        -buff_size 8388608 -trace_stat -stf carrier_stat.csv -fd 1 -trace_logs \
        -log_file carrier_logs.log -trace_err -error_file carrier_err.log >carrier_screen.log 2>&1) &
    local carrier=$!
    PIDS+=("$carrier")
    sleep 0.3
    local sipp_carrier_pid
    sipp_carrier_pid="$(pgrep -P "$carrier" | head -1 || true)"
    python3 "$HERE/procmon.py" "$rd/procmon_carrier.csv" --interval 0.5 \
        sipp_carrier="${sipp_carrier_pid:-0}" &
    PIDS+=("$!"); local mon2=$!
    wait "$carrier" || true
    t1="$(now)"
    echo "--- last call ended; waiting for the callbacks (at most ${DRAIN_TIMEOUT}s)"
    python3 "$HERE/callbacks.py" drain "$url" --timeout "$DRAIN_TIMEOUT" || true
    t2="$(now)"
    # SIPp writes its statistics every second (-fd 1): the epilogue's idle
    # (IDLE_AFTER) lets the last try's counters reach the files.
    engine_epilogue
    stop_pid "$agent" 5; stop_pid "$gateway" 5
    stop_pid "$sink_a" 2; stop_pid "$sink_b" 2
    stop_pid "$watch" 3; stop_pid "$mon" 3; stop_pid "$mon2" 3
    cat "$rd/procmon_carrier.csv" >>"$rd/procmon.csv"
    stop_engine
    local drain_s
    drain_s="$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t1" "$t2")"
    write_meta "$rd" "\"rate\": $rate, \"duration_s\": $DURATION, \"calls\": $calls, \"share_pct\": $SHARE, \"queue_delay_s\": $QUEUE_DELAY, \"hold_ms\": $HOLD_MS, \"agents\": $agents, \"gateway_busy_pct\": $GW_BUSY, \"drain_timeout_s\": $DRAIN_TIMEOUT, \"drain_s\": $drain_s, \"t_carrier_start\": $t0, \"t_carrier_end\": $t1, \"engine_rust_log\": \"$ENGINE_RUST_LOG\""
    local st=0
    python3 "$HERE/callbacks.py" "$rd" || st=$?
    SOAK_STATUS=$st
}

# WebRTC agents (see the header): one engine per --calls value; the load
# client plays the browser agents and the callers.
run_webrtc() {
    local calls="$CALLS"
    local agents="${AGENTS:-$((calls + calls / 10 + 10))}"
    local rd="$OUT/webrtc-$calls"
    local setup_s=$(((calls + SETUP_RATE - 1) / SETUP_RATE))
    local hold_s=$((setup_s + SETTLE + MEASURE + 30))
    local reg_s=$((agents / 50 + 30))
    local limit=$((reg_s + setup_s + hold_s + 120))
    local ws_port
    ws_port="$(free_ports 1)"
    echo "=== webrtc: $calls bridged calls to browser agents (set up at $SETUP_RATE/s), $agents agents" \
        "on SIP over WebSocket (127.0.0.1:$ws_port), measure ${MEASURE}s"
    local saved_extra="${GENCONF_EXTRA:-}"
    GENCONF_EXTRA="${GENCONF_EXTRA:-} --ws-port $ws_port --max-connections-per-source $((agents + 64))"
    NO_REGISTER=1 start_engine "$rd" "$agents"
    GENCONF_EXTRA="$saved_extra"
    local mm
    mm="$(start_metricsmon "$rd" "$limit")"
    PIDS+=("$mm")
    # The agents register over the WebSocket (50/s), then the client waits
    # for the calls, measures and reports (webrtc_agents.json, same fields
    # as rtpload.json), and keeps the calls up until SIGTERM.
    "$WA_BIN" --ws "127.0.0.1:$ws_port" --agents "$agents" --register-rate 50 \
        --caller-port "$RTP_A" --calls "$calls" --max-wait $((setup_s + 20)) --settle "$SETTLE" \
        --measure "$MEASURE" --linger $((hold_s + setup_s)) --threads "$CLIENT_THREADS" \
        >"$rd/webrtc_agents.json" 2>"$rd/webrtc_agents.log" &
    local wa=$!
    PIDS+=("$wa")
    local i
    for ((i = 0; i < reg_s * 10; i++)); do
        grep -q '"ready"' "$rd/webrtc_agents.json" 2>/dev/null && break
        kill -0 "$wa" 2>/dev/null || break
        sleep 0.1
    done
    echo "--- $(grep -o '"registered":[0-9]*,"register_failed":[0-9]*' "$rd/webrtc_agents.json" || echo 'client not ready')" \
        "(engine RSS $(rss_mb) MB)"
    if [ "$PERF" = 1 ]; then
        local psecs=$MEASURE
        [ "$psecs" -gt 15 ] && psecs=15
        profile_engine "$rd" 1 "$psecs" "$rd/webrtc_agents.log" measuring &
        PERF_JOB=$!
        PIDS+=("$PERF_JOB")
    fi
    python3 "$HERE/procmon.py" "$rd/procmon.csv" --interval 0.5 $(port_groups) engine="$ENGINE_PID" \
        webrtc_agents="$wa" &
    PIDS+=("$!"); local mon=$!
    sleep 1
    local t0
    t0="$(now)"
    (cd "$rd" && exec timeout -k 5 "$limit" sipp "127.0.0.1:$SIP_PORT" -sf "$HERE/sipp/carrier.xml" \
        -i 127.0.0.1 -p "$CARRIER_PORT" -r "$SETUP_RATE" -m "$calls" -l $((calls + 10)) \
        -d $((hold_s * 1000)) -nostdin -set called +33980000099 -set rtp_port "$RTP_A" \
        -recv_timeout 15000 -buff_size 8388608 -trace_stat -stf carrier_stat.csv -fd 1 \
        -trace_logs -log_file carrier_logs.log -trace_err -error_file carrier_err.log \
        >carrier_screen.log 2>&1) &
    local carrier=$!
    PIDS+=("$carrier")
    sleep 0.3
    local sipp_carrier_pid
    sipp_carrier_pid="$(pgrep -P "$carrier" | head -1 || true)"
    python3 "$HERE/procmon.py" "$rd/procmon_carrier.csv" --interval 0.5 \
        sipp_carrier="${sipp_carrier_pid:-0}" &
    PIDS+=("$!"); local mon2=$!
    wait "$carrier" || true
    local t1
    t1="$(now)"
    # The engine's BYEs reach the agents; then the client prints its last
    # counters on SIGTERM.
    sleep 3
    stop_pid "$wa" 10
    [ -z "${PERF_JOB:-}" ] || wait_pid "$PERF_JOB" 180 || true
    PERF_JOB=""
    engine_epilogue
    stop_pid "$mon" 3; stop_pid "$mon2" 3; stop_pid "$mm" 3
    cat "$rd/procmon_carrier.csv" >>"$rd/procmon.csv"
    stop_engine
    write_meta "$rd" "\"calls\": $calls, \"setup_rate\": $SETUP_RATE, \"measure_s\": $MEASURE, \"hold_s\": $hold_s, \"agents\": $agents, \"client_threads\": $CLIENT_THREADS, \"t_carrier_start\": $t0, \"t_carrier_end\": $t1"
    python3 "$HERE/footprint.py" "$rd" --calls "$calls" --kind bridged || true
    python3 "$HERE/analyze.py" "$rd" >"$rd/summary.txt"
    print_media_summary "$rd"
}

SOAK_STATUS=0
if [ "$MODE" = rate ]; then
    IFS=, read -r -a RLIST <<<"$RATES"
    for r in "${RLIST[@]}"; do
        run_rate "$r"
    done
elif [ "$MODE" = soak ]; then
    run_soak
elif [ "$MODE" = callbacks ]; then
    run_callbacks
elif [ "$MODE" = queue ]; then
    run_queue
elif [ "$MODE" = webrtc ]; then
    IFS=, read -r -a CLIST <<<"$CALLS"
    for c in "${CLIST[@]}"; do
        CALLS="$c"
        # meta.json records MODE: the comparison run is a media run.
        [ "$COMPARE" = 0 ] || { MODE=media; run_media; MODE=webrtc; }
        run_webrtc
    done
    python3 "$HERE/table.py" "$OUT" || true
else
    run_media
fi
exit "$SOAK_STATUS"
