#!/usr/bin/env python3
"""Registers many telesecretaries from one UDP port (digest MD5, qop=auth).

The registrar sends each agent's INVITEs to the address its REGISTER came
from, so registering every agent from the port the SIPp softphone will then
bind makes that one SIPp process answer for all of them.

Usage: register.py ENGINE_HOST:PORT LOCAL_PORT AGENTS_FILE [--expires 3600]
AGENTS_FILE: lines "user password". Exits non-zero unless every agent got
200 OK. Pipelines up to --window registrations in flight.
"""

import argparse
import hashlib
import re
import socket
import sys
import time

REALM = "permanence"


def md5(s):
    return hashlib.md5(s.encode()).hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("engine")
    ap.add_argument("local_port", type=int)
    ap.add_argument("agents_file")
    ap.add_argument("--expires", type=int, default=3600)
    ap.add_argument("--window", type=int, default=50)
    ap.add_argument("--timeout", type=float, default=60.0)
    a = ap.parse_args()
    host, port = a.engine.rsplit(":", 1)
    dest = (host, int(port))
    lp = a.local_port
    agents = [l.split() for l in open(a.agents_file) if l.strip()]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", lp))
    sock.settimeout(0.5)

    # Wait until the engine answers OPTIONS (it is up).
    t_ready = time.time() + a.timeout
    n = 0
    while True:
        n += 1
        opt = (
            f"OPTIONS sip:{host} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{lp};branch=z9hG4bKldopt{n};rport\r\n"
            f"From: <sip:probe@127.0.0.1>;tag=p{n}\r\nTo: <sip:{host}>\r\n"
            f"Call-ID: probe-{n}-{lp}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
            f"Content-Length: 0\r\n\r\n"
        ).encode()
        sock.sendto(opt, dest)
        try:
            data, _ = sock.recvfrom(8192)
            if data.startswith(b"SIP/2.0 200"):
                break
        except (socket.timeout, ConnectionRefusedError):
            pass
        if time.time() > t_ready:
            print("engine did not answer OPTIONS", file=sys.stderr)
            sys.exit(1)
        time.sleep(0.2)

    def msg(user, cseq, auth=""):
        return (
            f"REGISTER sip:{host} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{lp};branch=z9hG4bKld{user}x{cseq};rport\r\n"
            f"From: <sip:{user}@{host}>;tag=r{user}\r\n"
            f"To: <sip:{user}@{host}>\r\n"
            f"Call-ID: reg-{user}-{lp}@127.0.0.1\r\n"
            f"CSeq: {cseq} REGISTER\r\n"
            f"Contact: <sip:{user}@127.0.0.1:{lp}>\r\n"
            f"Expires: {a.expires}\r\nMax-Forwards: 70\r\nUser-Agent: permanence-load\r\n"
            f"{auth}Content-Length: 0\r\n\r\n"
        ).encode()

    pw = {u: p for u, p in agents}
    state = {}  # user -> (stage, sent_at, message)
    todo = [u for u, _ in agents]
    done = set()
    failed = {}
    deadline = time.time() + a.timeout
    t0 = time.time()
    while (todo or state) and time.time() < deadline:
        while todo and len(state) < a.window:
            u = todo.pop()
            m = msg(u, 1)
            state[u] = (1, time.time(), m)
            sock.sendto(m, dest)
        try:
            data, _ = sock.recvfrom(8192)
        except socket.timeout:
            # Retransmit what is outstanding.
            for u, (stage, at, m) in list(state.items()):
                if time.time() - at > 0.5:
                    state[u] = (stage, time.time(), m)
                    sock.sendto(m, dest)
            continue
        text = data.decode(errors="replace")
        first = text.split("\r\n", 1)[0]
        mu = re.search(r"^Call-ID:\s*reg-([^-]+)-", text, re.M | re.I)
        if not mu or mu.group(1) not in state:
            continue
        u = mu.group(1)
        code = int(first.split()[1])
        stage = state[u][0]
        if code < 200:
            continue
        if code == 401 and stage == 1:
            nonce = re.search(r'nonce="([^"]+)"', text).group(1)
            ha1 = md5(f"{u}:{REALM}:{pw[u]}")
            uri = f"sip:{host}"
            ha2 = md5(f"REGISTER:{uri}")
            cnonce = "c0ffee"
            resp = md5(f"{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}")
            auth = (
                f'Authorization: Digest username="{u}", realm="{REALM}", nonce="{nonce}", '
                f'uri="{uri}", response="{resp}", algorithm=MD5, qop=auth, nc=00000001, '
                f'cnonce="{cnonce}"\r\n'
            )
            m = msg(u, 2, auth)
            state[u] = (2, time.time(), m)
            sock.sendto(m, dest)
        elif code == 200 and stage == 2:
            done.add(u)
            del state[u]
        else:
            failed[u] = first
            del state[u]
    dt = time.time() - t0
    print(
        f"registered {len(done)}/{len(agents)} agents from 127.0.0.1:{lp} in {dt:.1f}s"
        + (f"; failed: {list(failed.items())[:5]}" if failed else "")
        + (f"; unanswered: {len(state) + len(todo)}" if state or todo else ""),
        file=sys.stderr,
    )
    sys.exit(0 if len(done) == len(agents) else 1)


if __name__ == "__main__":
    main()
