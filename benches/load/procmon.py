#!/usr/bin/env python3
"""Samples CPU time, RSS and threads of given processes, plus the kernel's
UDP counters, every --interval seconds, until SIGTERM or every process is
gone. Writes CSV lines:
  t_unix,name,pid,cpu_s,utime_s,stime_s,rss_kb,threads
  t_unix,udp,0,InDatagrams,OutDatagrams,RcvbufErrors,SndbufErrors,InErrors,NoPorts
  t_unix,machine,0,cpu_s   (CPU time of every process on the machine: the sum
      of utime+stime+cutime+cstime over /proc/*/stat, so that children reaped
      by their parent still count; /proc/stat undercounts on these VMs)
  t_unix,udpq:<group>,0,sockets,rx_queue_bytes_sum,rx_queue_bytes_max,drops_sum
      (with --ports group=LO-HI: UDP sockets bound on those local ports, from
      /proc/net/udp: how much is waiting to be read, and kernel drops)
Usage: procmon.py OUT.csv [--interval 0.5] [--ports group=LO-HI ...] name=PID ...
"""
import os
import signal
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")


def proc(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
        rest = st[st.rindex(")") + 2:].split()
        ut, stt = int(rest[11]) / HZ, int(rest[12]) / HZ
        threads = int(rest[17])
        rss = 0
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        return ut, stt, rss, threads
    except (OSError, ValueError, IndexError):
        return None


def udp():
    with open("/proc/net/snmp") as f:
        lines = [l.split() for l in f if l.startswith("Udp:")]
    hdr, val = lines[0][1:], [int(x) for x in lines[1][1:]]
    d = dict(zip(hdr, val))
    return [d.get(k, 0) for k in ("InDatagrams", "OutDatagrams", "RcvbufErrors", "SndbufErrors", "InErrors", "NoPorts")]


def udp_queues(groups):
    acc = {g: [0, 0, 0, 0] for g, _, _ in groups}
    with open("/proc/net/udp") as f:
        next(f)
        for line in f:
            p = line.split()
            port = int(p[1].split(":")[1], 16)
            rxq = int(p[4].split(":")[1], 16)
            drops = int(p[-1])
            for g, lo, hi in groups:
                if lo <= port <= hi:
                    a = acc[g]
                    a[0] += 1
                    a[1] += rxq
                    a[2] = max(a[2], rxq)
                    a[3] += drops
    return acc


def machine():
    total = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
            rest = st[st.rindex(")") + 2:].split()
            total += int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14])
        except (OSError, ValueError, IndexError):
            pass
    return total / HZ


def main():
    out = sys.argv[1]
    interval = 0.5
    targets = []
    groups = []
    args = sys.argv[2:]
    i = 0
    while i < len(args):
        if args[i] == "--interval":
            interval = float(args[i + 1])
            i += 2
            continue
        if args[i] == "--ports":
            g, rng = args[i + 1].split("=")
            lo, hi = rng.split("-")
            groups.append((g, int(lo), int(hi)))
            i += 2
            continue
        name, pid = args[i].split("=")
        targets.append((name, int(pid)))
        i += 1
    # Our own cost (scanning /proc is not free), so that it is not counted
    # as "other processes".
    targets.append((f"procmon_{os.getpid()}", os.getpid()))
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    with open(out, "w", buffering=1) as f:
        while not stop:
            t = time.time()
            alive = 0
            for name, pid in targets:
                if name.startswith("procmon_"):
                    p = proc(pid)
                    if p:
                        f.write(f"{t:.3f},{name},{pid},{p[0] + p[1]:.2f},{p[0]:.2f},{p[1]:.2f},{p[2]},{p[3]}\n")
                    continue
                p = proc(pid)
                if p:
                    alive += 1
                    ut, stt, rss, th = p
                    f.write(f"{t:.3f},{name},{pid},{ut + stt:.2f},{ut:.2f},{stt:.2f},{rss},{th}\n")
            f.write(f"{t:.3f},udp,0," + ",".join(map(str, udp())) + "\n")
            if groups:
                for g, a in udp_queues(groups).items():
                    f.write(f"{t:.3f},udpq:{g},0," + ",".join(map(str, a)) + "\n")
            f.write(f"{t:.3f},machine,0,{machine():.2f}\n")
            if not alive:
                break
            time.sleep(interval)


if __name__ == "__main__":
    main()
