#!/usr/bin/env python3
"""Writes a load-test configuration for Permanence into a run directory.

One practice ("load"), open 24/7, no triage, no queue announcements, a
20 ms silent greeting, routed at once to a pool of N agents (wrap-up 0,
qualify off), a wide RTP port range, and the call-records store inside the
run directory. Agents are load0001..loadNNNN with password "pw-<user>".

Usage: genconf.py RUNDIR --agents N --sip-port P --http-port P
                  [--rtp-min 20000 --rtp-max 59999] [--greeting-ms 20]
                  [--max-expires 7200] [--soak [--greeting-s 3] [--triage-s 3]
                   [--triage-timeout 2] [--hold-s 20] [--announce-every 30]
                   [--wrap-up 0] [--agents-b 0]]
                  [--callbacks --gateway-port P [--queue-delay 5]]
                  [--ws-port P [--max-connections-per-source N]]
Prints the main configuration path.

--ws-port P (the WebRTC agents benchmark, run.sh webrtc): SIP over WebSocket
on 127.0.0.1:P ([sip] listen_ws), for browser agents (webrtc_agents.rs).
Every WebSocket connection counts against [sip.limits]
max_connections_per_source (a WebSocket peer is never trusted, even from
the trunk's address): --max-connections-per-source N (default: agents + 64)
lets N connections from 127.0.0.1 in; max_connections is raised to match.

--soak (the soak benchmark, run.sh soak): the practice gets realistic audio
instead of the 20 ms silent greeting, generated here as 8 kHz mono 16-bit
WAV files: a spoken-like greeting (--greeting-s), a triage menu prompt
(--triage-s) and a hold-music loop (--hold-s); a triage menu (1 urgence,
priority +10; 2 rendez-vous, the default after --triage-timeout seconds;
3 resultats d'analyses); periodic position announcements in the queue
(--announce-every); wrap-up --wrap-up seconds. With --agents-b K, a second
practice "load-b" (DID +33980000098, same prompts and menu) is served by a
pool of only the last K agents (the first practice's pool has the others):
an understaffed practice, where callers wait with no agent free.

--callbacks (the callback benchmark, run.sh callbacks): the practice
offers callbacks that keep the caller's place ([callback]: offer, digit 2,
offered right after the greeting, within 60 minutes, 3 tries 1 minute
apart) and has an [outbound] section (code "9"; caller ID: its
forwarded-from number); the trunk's outbound gateway is
127.0.0.1:--gateway-port, where the patients are called back. Short
greeting (--greeting-ms). The callback digit only works while the call
waits with no agent ringing; with free agents a call is offered at once,
so --queue-delay S (S > 0) makes every call wait S seconds first: routing
step 0 is a pool whose only agent ("loadwait") never registers, step 1
(after S seconds) the pool of the N agents. A callback request keeps its
place and its steps, so it is offered S seconds after its call joined the
queue at the earliest.
"""

import argparse
import hashlib
import math
import os
import random
import struct

REALM = "permanence"
DID = "+33980000099"
FORWARDED = "+33380000099"
# --soak --agents-b: the second, understaffed practice.
DID_B = "+33980000098"
FORWARDED_B = "+33380000098"


def agent_name(i):
    return f"load{i:04d}"


def password(user):
    return f"pw-{user}"


def write_pcm(path, samples):
    """Writes 16-bit signed samples as an 8 kHz mono WAV file."""
    data = struct.pack(f"<{len(samples)}h", *samples)
    hdr = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt "
    hdr += struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16)
    hdr += b"data" + struct.pack("<I", len(data))
    with open(path, "wb") as f:
        f.write(hdr + data)


def write_wav(path, ms):
    write_pcm(path, [0] * (8 * ms))


def speech_like(seconds, seed):
    """Syllable-like bursts (a voiced tone with a few harmonics, a gliding
    pitch and an attack/decay envelope) separated by short pauses: audio
    with the level and rhythm of a spoken prompt, not silence."""
    rng = random.Random(seed)
    n = int(seconds * 8000)
    out = []
    while len(out) < n:
        syl = int(rng.uniform(0.12, 0.26) * 8000)
        f0 = rng.uniform(110, 190)
        glide = rng.uniform(-0.25, 0.25)
        amps = [1.0, rng.uniform(0.3, 0.7), rng.uniform(0.2, 0.5), rng.uniform(0.05, 0.2)]
        ph = 0.0
        for i in range(syl):
            x = i / syl
            f = f0 * (1 + glide * x)
            ph += 2 * math.pi * f / 8000
            env = min(1.0, x / 0.15) * min(1.0, (1 - x) / 0.3)
            v = sum(a * math.sin((k + 1) * ph) for k, a in enumerate(amps))
            out.append(int(5000 * env * v))
        gap = rng.choice([0.03, 0.05, 0.08, 0.3]) if rng.random() < 0.8 else 0.45
        out.extend([0] * int(gap * 8000))
    return out[:n]


def hold_music(seconds):
    """A looping arpeggio (C, A minor, F, G major chords, 4 notes a
    second) with a soft bass: hold music."""
    chords = [[261.6, 329.6, 392.0, 523.3], [220.0, 261.6, 329.6, 440.0],
              [174.6, 220.0, 261.6, 349.2], [196.0, 246.9, 293.7, 392.0]]
    n = int(seconds * 8000)
    note = 2000  # 0.25 s
    out = []
    for i in range(n):
        k = i // note
        chord = chords[(k // 8) % len(chords)]
        f = chord[k % 4] if (k // 4) % 2 == 0 else chord[3 - k % 4]
        t = (i % note) / 8000
        env = math.exp(-3.0 * t)
        bass = chord[0] / 2
        v = 0.6 * env * math.sin(2 * math.pi * f * t) + 0.25 * math.sin(2 * math.pi * bass * i / 8000)
        out.append(int(7000 * v))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rundir")
    ap.add_argument("--agents", type=int, required=True)
    ap.add_argument("--sip-port", type=int, required=True)
    ap.add_argument("--http-port", type=int, required=True)
    ap.add_argument("--rtp-min", type=int, default=20000)
    ap.add_argument("--rtp-max", type=int, default=59999)
    ap.add_argument("--greeting-ms", type=int, default=20)
    ap.add_argument("--max-expires", type=int, default=7200)
    ap.add_argument("--soak", action="store_true")
    ap.add_argument("--greeting-s", type=float, default=3.0)
    ap.add_argument("--triage-s", type=float, default=3.0)
    ap.add_argument("--triage-timeout", type=int, default=2)
    ap.add_argument("--hold-s", type=float, default=20.0)
    ap.add_argument("--announce-every", type=int, default=30)
    ap.add_argument("--wrap-up", type=int, default=0)
    ap.add_argument("--agents-b", type=int, default=0)
    # [sip.limits] caps: generous by default so that a benchmark measures
    # the call path, not the caps; the overload runs lower them.
    ap.add_argument("--max-calls", type=int, default=100000)
    ap.add_argument("--max-heap-mb", type=int, default=16384)
    ap.add_argument("--callbacks", action="store_true")
    ap.add_argument("--gateway-port", type=int, default=0)
    ap.add_argument("--queue-delay", type=int, default=0)
    ap.add_argument("--ws-port", type=int, default=0)
    ap.add_argument("--max-connections-per-source", type=int, default=0)
    a = ap.parse_args()
    if a.callbacks and not a.gateway_port:
        ap.error("--callbacks needs --gateway-port")
    if a.callbacks and a.soak:
        ap.error("--callbacks and --soak do not mix")

    rd = os.path.abspath(a.rundir)
    os.makedirs(os.path.join(rd, "dialplans"), exist_ok=True)
    wav = os.path.join(rd, "greeting.wav")
    if a.soak:
        write_pcm(wav, speech_like(a.greeting_s, 1))
        write_pcm(os.path.join(rd, "triage.wav"), speech_like(a.triage_s, 2))
        write_pcm(os.path.join(rd, "hold.wav"), hold_music(a.hold_s))
    else:
        write_wav(wav, a.greeting_ms)

    lines = [
        "# Generated by benches/load/genconf.py (load benchmark).",
        'dialplans_dir = "dialplans"',
        "",
        "[sip]",
        f'listen_udp = ["127.0.0.1:{a.sip_port}"]',
        f'listen_tcp = ["127.0.0.1:{a.sip_port}"]',
    ]
    if a.ws_port:
        lines.append(f'listen_ws = ["127.0.0.1:{a.ws_port}"]')
    lines += [
        f'realm = "{REALM}"',
        'public_host = "127.0.0.1"',
        'user_agent = "Permanence-load"',
        "",
        "[sip.registrar]",
        "min_expires = 60",
        f"max_expires = {a.max_expires}",
        "default_expires = 3600",
        "nonce_ttl_seconds = 300",
        "qualify_interval_seconds = 0",
        "qualify_timeout_seconds = 5",
        'algorithms = ["MD5"]',
        "",
        "[sip.limits]",
        f"max_calls = {a.max_calls}",
        f"max_heap_mb = {a.max_heap_mb}",
    ]
    if a.ws_port:
        per_source = a.max_connections_per_source or a.agents + 64
        lines += [
            f"max_connections_per_source = {per_source}",
            f"max_connections = {max(1024, per_source + 64)}",
        ]
    lines += [
        "",
        "[rtp]",
        'bind = "127.0.0.1"',
        'advertise = "127.0.0.1"',
        f"port_min = {a.rtp_min}",
        f"port_max = {a.rtp_max}",
        "",
        "[http]",
        f'listen = "127.0.0.1:{a.http_port}"',
        "",
        "[records]",
        f'path = "{rd}/records.sqlite"',
        f'voicemail_dir = "{rd}/voicemail"',
        "",
        "[dispatcher]",
        'strategy = "longest-idle"',
        "max_no_answer_strikes = 3",
        "busy_backoff_seconds = 10",
        "default_ring_timeout_seconds = 20",
        f"default_wrap_up_seconds = {a.wrap_up if a.soak else 0}",
        "default_handle_seconds = 60",
        "",
        "[[trunks]]",
        'name = "load-carrier"',
        'sources = ["127.0.0.1/32"]',
    ]
    if a.callbacks:
        # Where the patients are called back (a SIPp UAS of run.sh).
        lines.append(f'outbound = "127.0.0.1:{a.gateway_port}"')
    lines.append("")
    names = [agent_name(i) for i in range(1, a.agents + 1)]
    wait_agent = "loadwait" if a.callbacks and a.queue_delay > 0 else None
    for u in names:
        ha1 = hashlib.md5(f"{u}:{REALM}:{password(u)}".encode()).hexdigest()
        # Minimal entries: the main file is limited to 1 MiB (about 10,000
        # agents in this form).
        lines += [
            "[[agents]]",
            f'username = "{u}"',
            f'display_name = "{u}"',
            f'ha1_md5 = "{ha1}"',
            'languages = ["fr"]',
        ]
    if wait_agent:
        # Never registers: the calls wait --queue-delay seconds in step 0.
        ha1 = hashlib.md5(f"{wait_agent}:{REALM}:{password(wait_agent)}".encode()).hexdigest()
        lines += [
            "[[agents]]",
            f'username = "{wait_agent}"',
            f'display_name = "{wait_agent}"',
            f'ha1_md5 = "{ha1}"',
            'languages = ["fr"]',
        ]
    # --soak --agents-b K: the last K agents form the pool of a second,
    # understaffed practice.
    nb = min(a.agents_b, a.agents - 1) if a.soak else 0
    pool_a, pool_b = names[: len(names) - nb], names[len(names) - nb:]
    lines += [
        "[[pools]]",
        'id = "load-pool"',
        'name = "Load pool"',
        "agents = [" + ", ".join(f'"{u}"' for u in pool_a) + "]",
        "",
    ]
    if wait_agent:
        lines += [
            "[[pools]]",
            'id = "load-wait"',
            'name = "Nobody (calls wait --queue-delay seconds)"',
            f'agents = ["{wait_agent}"]',
            "",
        ]
    if pool_b:
        lines += [
            "[[pools]]",
            'id = "load-pool-b"',
            'name = "Load pool B (understaffed)"',
            "agents = [" + ", ".join(f'"{u}"' for u in pool_b) + "]",
            "",
        ]
    main = os.path.join(rd, "permanence.toml")
    with open(main, "w") as f:
        f.write("\n".join(lines))

    dp = f"""# Generated by benches/load/genconf.py: open 24/7, no triage.
id = "load"
name = "Cabinet de charge"
specialty = "generaliste"
language = "fr"
timezone = "Europe/Paris"
country = "fr"
forwarded_from = ["{FORWARDED}"]
dids = ["{DID}"]

[hours]
always_open = true
holidays = "none"

[prompts]
greeting = "{wav}"

[queue]
announce_position = false
announce_wait = false

[routing]
priority = 0
max_wait_seconds = 600
wrap_up_seconds = 0
ring_timeout_seconds = 20
[[routing.steps]]
after_seconds = 0
pool = "load-pool"
[routing.overflow]
action = "hangup"
"""
    if a.callbacks:
        if wait_agent:
            dp = dp.replace('pool = "load-pool"', 'pool = "load-wait"\n[[routing.steps]]\n'
                            f'after_seconds = {a.queue_delay}\npool = "load-pool"')
        dp += """
[callback]
offer = true
digit = "2"
offer_after_seconds = 0
within_minutes = 60
max_attempts = 3
retry_minutes = 1

[outbound]
code = "9"
"""
    if a.soak:
        dp = soak_dialplan(rd, a, "load", "Cabinet de charge", FORWARDED, DID, "load-pool")
        if pool_b:
            with open(os.path.join(rd, "dialplans", "load-b.toml"), "w") as f:
                f.write(soak_dialplan(rd, a, "load-b", "Cabinet en sous-effectif", FORWARDED_B, DID_B,
                                      "load-pool-b"))
    with open(os.path.join(rd, "dialplans", "load.toml"), "w") as f:
        f.write(dp)
    with open(os.path.join(rd, "agents.txt"), "w") as f:
        for u in names:
            f.write(f"{u} {password(u)}\n")
    print(main)


def soak_dialplan(rd, a, pid, name, forwarded, did, pool):
    return f"""# Generated by benches/load/genconf.py --soak: open 24/7, triage menu,
# realistic greeting, menu and hold music, position announcements.
id = "{pid}"
name = "{name}"
specialty = "generaliste"
language = "fr"
timezone = "Europe/Paris"
country = "fr"
forwarded_from = ["{forwarded}"]
dids = ["{did}"]

[hours]
always_open = true
holidays = "none"

[prompts]
greeting = "{rd}/greeting.wav"
triage = "{rd}/triage.wav"
hold = "{rd}/hold.wav"

[queue]
announce_position = true
announce_wait = false
announce_every_seconds = {a.announce_every}

[triage]
timeout_seconds = {a.triage_timeout}
default = "2"
[[triage.options]]
digit = "1"
label = "urgence"
priority = 10
[[triage.options]]
digit = "2"
label = "rendez-vous"
[[triage.options]]
digit = "3"
label = "résultats d'analyses"

[routing]
priority = 0
max_wait_seconds = 600
wrap_up_seconds = {a.wrap_up}
ring_timeout_seconds = 20
[[routing.steps]]
after_seconds = 0
pool = "{pool}"
[routing.overflow]
action = "hangup"
"""


if __name__ == "__main__":
    main()
