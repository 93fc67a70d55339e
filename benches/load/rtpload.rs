//! rtpload: the RTP side of the Permanence load benchmark (std only, Linux).
//!
//! Build: `rustc -O --edition 2021 benches/load/rtpload.rs -o rtpload`
//! (run.sh does it). No crates, no workspace member.
//!
//! `rtpload media --caller-port A --agent-port B --calls N ...`
//!   Plays every caller (socket A, the port all carrier SDP offers point at)
//!   and every telesecretary (socket B, the port all agent SDP answers point
//!   at). The engine sends each call's media from its own leg port, so a
//!   stream is identified by the engine port it comes from. Like a phone
//!   with symmetric RTP, the tool starts sending a 50 packet/s G.711 (PT 0)
//!   stream back to an engine port once it receives RTP from it: the caller
//!   side as soon as hold audio arrives, the agent side as soon as relayed
//!   caller audio arrives (i.e. once the call is bridged).
//!   Each 160-byte payload carries a magic, the stream's key (engine port +
//!   side), a measured flag, a counter and the send time, so the receiving
//!   side (through the engine's relay, which copies PCMU payloads) can count
//!   exactly what crossed the engine per direction and how long it took.
//!   Phases: wait until N streams flow both ways (or --max-wait), settle,
//!   then a measurement window (packets sent in it are flagged), then drain;
//!   prints a JSON report on stdout and keeps the streams alive for
//!   --linger seconds (so calls do not time out before the carrier hangs up).
//!
//! `rtpload sink --port P --seconds S`
//!   Binds P, counts what arrives (hold audio of signalling-only runs).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Minimal libc FFI: socket buffer sizes, sendmmsg, recvmmsg (x86_64/aarch64
// Linux layouts).

#[repr(C)]
struct IoVec {
    base: *mut u8,
    len: usize,
}

#[repr(C)]
struct MsgHdr {
    name: *mut u8,
    namelen: u32,
    iov: *mut IoVec,
    iovlen: usize,
    control: *mut u8,
    controllen: usize,
    flags: i32,
}

#[repr(C)]
struct MMsgHdr {
    hdr: MsgHdr,
    len: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct SockAddrIn {
    family: u16,
    port: u16, // network order
    addr: u32, // network order
    zero: [u8; 8],
}

#[repr(C)]
struct TimeSpec {
    sec: i64,
    nsec: i64,
}

extern "C" {
    fn setsockopt(fd: i32, level: i32, name: i32, val: *const u8, len: u32) -> i32;
    fn sendmmsg(fd: i32, msgs: *mut MMsgHdr, vlen: u32, flags: i32) -> i32;
    fn recvmmsg(fd: i32, msgs: *mut MMsgHdr, vlen: u32, flags: i32, timeout: *mut TimeSpec)
        -> i32;
}

const SOL_SOCKET: i32 = 1;
const SO_SNDBUF: i32 = 7;
const SO_RCVBUF: i32 = 8;
const SO_SNDBUFFORCE: i32 = 32;
const SO_RCVBUFFORCE: i32 = 33;
const MSG_WAITFORONE: i32 = 0x10000;
const AF_INET: u16 = 2;

fn set_buffers(sock: &UdpSocket, bytes: i32) {
    let fd = sock.as_raw_fd();
    let v = bytes.to_ne_bytes();
    for (force, plain) in [(SO_RCVBUFFORCE, SO_RCVBUF), (SO_SNDBUFFORCE, SO_SNDBUF)] {
        // SAFETY: valid fd, pointer to 4 bytes.
        let r = unsafe { setsockopt(fd, SOL_SOCKET, force, v.as_ptr(), 4) };
        if r != 0 {
            // Not root: fall back to the limit of net.core.[rw]mem_max.
            unsafe { setsockopt(fd, SOL_SOCKET, plain, v.as_ptr(), 4) };
        }
    }
}

const BATCH: usize = 64;
const PKT: usize = 12 + 160;

/// Batched sender on one socket.
struct Sender {
    fd: i32,
    bufs: Vec<[u8; PKT]>,
    addrs: Vec<SockAddrIn>,
    n: usize,
    sent: u64,
    errors: u64,
}

impl Sender {
    fn new(sock: &UdpSocket) -> Self {
        Sender {
            fd: sock.as_raw_fd(),
            bufs: vec![[0u8; PKT]; BATCH],
            addrs: vec![
                SockAddrIn {
                    family: AF_INET,
                    port: 0,
                    addr: 0,
                    zero: [0; 8]
                };
                BATCH
            ],
            n: 0,
            sent: 0,
            errors: 0,
        }
    }

    fn slot(&mut self, to: SocketAddrV4) -> &mut [u8; PKT] {
        if self.n == BATCH {
            self.flush();
        }
        let i = self.n;
        self.n += 1;
        self.addrs[i] = SockAddrIn {
            family: AF_INET,
            port: to.port().to_be(),
            addr: u32::from(*to.ip()).to_be(),
            zero: [0; 8],
        };
        &mut self.bufs[i]
    }

    fn flush(&mut self) {
        let n = self.n;
        if n == 0 {
            return;
        }
        let mut iov: Vec<IoVec> = (0..n)
            .map(|i| IoVec {
                base: self.bufs[i].as_mut_ptr(),
                len: PKT,
            })
            .collect();
        let mut msgs: Vec<MMsgHdr> = (0..n)
            .map(|i| MMsgHdr {
                hdr: MsgHdr {
                    name: (&mut self.addrs[i] as *mut SockAddrIn).cast(),
                    namelen: std::mem::size_of::<SockAddrIn>() as u32,
                    iov: &mut iov[i],
                    iovlen: 1,
                    control: std::ptr::null_mut(),
                    controllen: 0,
                    flags: 0,
                },
                len: 0,
            })
            .collect();
        let mut done = 0usize;
        while done < n {
            // SAFETY: msgs/iov/addrs/bufs outlive the call; counts are in bounds.
            let r = unsafe { sendmmsg(self.fd, msgs.as_mut_ptr().add(done), (n - done) as u32, 0) };
            if r <= 0 {
                // Skip the failing datagram (e.g. ECONNREFUSED from a closed
                // leg's ICMP) and go on.
                self.errors += 1;
                done += 1;
            } else {
                done += r as usize;
                self.sent += r as u64;
            }
        }
        self.n = 0;
    }
}

// ---------------------------------------------------------------------------
// Payload layout (inside the 160-byte PCMU payload)

const MAGIC: [u8; 4] = *b"PLd1";
const SIDE_CALLER: u8 = 0;
const SIDE_AGENT: u8 = 1;
const FLAG_MEASURED: u8 = 1;

fn now_ns(t0: Instant) -> u64 {
    t0.elapsed().as_nanos() as u64
}

/// Latency histogram: 10 µs buckets up to 200 ms.
#[derive(Clone)]
struct Histo {
    b: Vec<u64>,
    over: u64,
    max_us: u64,
    n: u64,
}

impl Histo {
    fn new() -> Self {
        Histo {
            b: vec![0; 20_000],
            over: 0,
            max_us: 0,
            n: 0,
        }
    }
    fn add(&mut self, us: u64) {
        self.n += 1;
        self.max_us = self.max_us.max(us);
        match self.b.get_mut((us / 10) as usize) {
            Some(c) => *c += 1,
            None => self.over += 1,
        }
    }
    fn merge(&mut self, o: &Histo) {
        for (a, b) in self.b.iter_mut().zip(&o.b) {
            *a += b;
        }
        self.over += o.over;
        self.n += o.n;
        self.max_us = self.max_us.max(o.max_us);
    }
    fn pct(&self, p: f64) -> f64 {
        if self.n == 0 {
            return -1.0;
        }
        let want = ((self.n as f64) * p).ceil().max(1.0) as u64;
        let mut acc = 0;
        for (i, c) in self.b.iter().enumerate() {
            acc += c;
            if acc >= want {
                return (i as f64) * 10.0 + 5.0;
            }
        }
        self.max_us as f64
    }
}

// ---------------------------------------------------------------------------
// Shared state

struct Shared {
    t0: Instant,
    /// 0 warm-up, 1 measuring, 2 drain, 3 report (then linger).
    phase: AtomicU8,
    stop: AtomicBool,
    /// Last receive time (ms since t0, 0 = never) per side and engine port.
    last_rx: [Vec<AtomicU64>; 2],
    /// Whether we received our own (relayed) payload on this stream.
    relayed: [Vec<AtomicBool>; 2],
    relayed_count: [AtomicU64; 2],
    new_streams: Mutex<Vec<(u8, u16)>>,
    rx_reports: Mutex<Vec<RxReport>>,
    tx_report: Mutex<Option<TxReport>>,
    /// Measured packets received so far (both sides), to end the drain.
    measured_rx: AtomicU64,
}

#[derive(Clone)]
struct RxReport {
    side: u8,
    packets: u64,
    other: u64,
    measured: u64,
    per_key: HashMap<u16, u64>,
    dups_or_late: u64,
    histo: Histo,
}

fn receiver(sh: Arc<Shared>, sock: UdpSocket, side: u8) -> RxReport {
    let fd = sock.as_raw_fd();
    let mut bufs = vec![[0u8; 2048]; BATCH];
    let mut addrs = vec![
        SockAddrIn {
            family: 0,
            port: 0,
            addr: 0,
            zero: [0; 8]
        };
        BATCH
    ];
    let mut rep = RxReport {
        side,
        packets: 0,
        other: 0,
        measured: 0,
        per_key: HashMap::new(),
        dups_or_late: 0,
        histo: Histo::new(),
    };
    // Highest counter seen per (key) to spot duplicates / reordering.
    let mut last_ctr: HashMap<u16, u32> = HashMap::new();
    let mut reported = false;
    while !sh.stop.load(Ordering::Relaxed) {
        if !reported && sh.phase.load(Ordering::Relaxed) == 3 {
            reported = true;
            sh.rx_reports.lock().unwrap().push(rep.clone());
        }
        let mut iov: Vec<IoVec> = bufs
            .iter_mut()
            .map(|b| IoVec {
                base: b.as_mut_ptr(),
                len: 2048,
            })
            .collect();
        let mut msgs: Vec<MMsgHdr> = (0..BATCH)
            .map(|i| MMsgHdr {
                hdr: MsgHdr {
                    name: (&mut addrs[i] as *mut SockAddrIn).cast(),
                    namelen: std::mem::size_of::<SockAddrIn>() as u32,
                    iov: &mut iov[i],
                    iovlen: 1,
                    control: std::ptr::null_mut(),
                    controllen: 0,
                    flags: 0,
                },
                len: 0,
            })
            .collect();
        // SAFETY: buffers live across the call. The socket has a 100 ms read
        // timeout (SO_RCVTIMEO), so this returns to check `stop`.
        let r = unsafe {
            recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                BATCH as u32,
                MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if r <= 0 {
            continue;
        }
        let now = now_ns(sh.t0);
        let now_ms = (now / 1_000_000).max(1);
        for i in 0..r as usize {
            let len = msgs[i].len as usize;
            let port = u16::from_be(addrs[i].port);
            let data = &bufs[i][..len.min(2048)];
            if len < 12 || data[0] >> 6 != 2 {
                rep.other += 1;
                continue;
            }
            rep.packets += 1;
            let prev = sh.last_rx[side as usize][port as usize].swap(now_ms, Ordering::Relaxed);
            if prev == 0 || now_ms.saturating_sub(prev) > 2000 {
                sh.new_streams.lock().unwrap().push((side, port));
            }
            let p = &data[12..];
            if p.len() >= 20 && p[..4] == MAGIC {
                let key = u16::from_be_bytes([p[4], p[5]]);
                let from_side = p[6];
                let flags = p[7];
                let ctr = u32::from_be_bytes([p[8], p[9], p[10], p[11]]);
                let sent = u64::from_be_bytes([p[12], p[13], p[14], p[15], p[16], p[17], p[18], p[19]]);
                if from_side == side {
                    rep.other += 1; // looped back to the same side: unexpected
                    continue;
                }
                if !sh.relayed[side as usize][port as usize].swap(true, Ordering::Relaxed) {
                    sh.relayed_count[side as usize].fetch_add(1, Ordering::Relaxed);
                }
                match last_ctr.get_mut(&key) {
                    Some(l) if ctr <= *l => rep.dups_or_late += 1,
                    Some(l) => *l = ctr,
                    None => {
                        last_ctr.insert(key, ctr);
                    }
                }
                if flags & FLAG_MEASURED != 0 {
                    rep.measured += 1;
                    sh.measured_rx.fetch_add(1, Ordering::Relaxed);
                    *rep.per_key.entry(key).or_insert(0) += 1;
                    rep.histo.add(now.saturating_sub(sent) / 1000);
                }
            } else {
                rep.other += 1;
            }
        }
    }
    rep
}

struct Stream {
    side: u8,
    port: u16,
    slot: u8,
    seq: u16,
    ts: u32,
    ssrc: u32,
    ctr: u32,
    measured_sent: u64,
}

#[derive(Clone)]
struct TxReport {
    sent: [u64; 2],
    measured: [u64; 2],
    per_key_measured: [HashMap<u16, u64>; 2],
    errors: u64,
    streams_max: usize,
    late_ticks: u64,
}

fn sender_loop(sh: Arc<Shared>, socks: [UdpSocket; 2], engine_ip: Ipv4Addr) -> TxReport {
    let mut tx = [Sender::new(&socks[0]), Sender::new(&socks[1])];
    let mut streams: HashMap<(u8, u16), Stream> = HashMap::new();
    let mut next_slot = 0u8;
    let mut rep = TxReport {
        sent: [0; 2],
        measured: [0; 2],
        per_key_measured: [HashMap::new(), HashMap::new()],
        errors: 0,
        streams_max: 0,
        late_ticks: 0,
    };
    let tick = Duration::from_millis(1);
    let mut next = Instant::now();
    let mut n_tick: u64 = 0;
    let mut reported = false;
    while !sh.stop.load(Ordering::Relaxed) {
        if !reported && sh.phase.load(Ordering::Relaxed) == 3 {
            reported = true;
            let mut r = rep.clone();
            for s in streams.values() {
                if s.measured_sent > 0 {
                    *r.per_key_measured[s.side as usize].entry(s.port).or_insert(0) += s.measured_sent;
                }
            }
            r.errors = tx[0].errors + tx[1].errors;
            *sh.tx_report.lock().unwrap() = Some(r);
        }
        for (side, port) in sh.new_streams.lock().unwrap().drain(..) {
            streams.entry((side, port)).or_insert_with(|| {
                next_slot = (next_slot + 1) % 20;
                Stream {
                    side,
                    port,
                    slot: next_slot,
                    seq: 0,
                    ts: 0,
                    ssrc: 0x5100_0000 | (u32::from(side) << 16) | u32::from(port),
                    ctr: 0,
                    measured_sent: 0,
                }
            });
        }
        rep.streams_max = rep.streams_max.max(streams.len());
        let slot = (n_tick % 20) as u8;
        let now = now_ns(sh.t0);
        let now_ms = now / 1_000_000;
        let measuring = sh.phase.load(Ordering::Relaxed) == 1;
        let mut dead = Vec::new();
        for (k, s) in streams.iter_mut() {
            if s.slot != slot {
                continue;
            }
            let last = sh.last_rx[s.side as usize][s.port as usize].load(Ordering::Relaxed);
            if now_ms.saturating_sub(last) > 2000 {
                dead.push(*k);
                continue;
            }
            let to = SocketAddrV4::new(engine_ip, s.port);
            let b = tx[s.side as usize].slot(to);
            b[0] = 0x80;
            b[1] = 0; // PT 0 PCMU
            b[2..4].copy_from_slice(&s.seq.to_be_bytes());
            b[4..8].copy_from_slice(&s.ts.to_be_bytes());
            b[8..12].copy_from_slice(&s.ssrc.to_be_bytes());
            let p = &mut b[12..];
            p[..4].copy_from_slice(&MAGIC);
            p[4..6].copy_from_slice(&s.port.to_be_bytes());
            p[6] = s.side;
            p[7] = if measuring { FLAG_MEASURED } else { 0 };
            p[8..12].copy_from_slice(&s.ctr.to_be_bytes());
            p[12..20].copy_from_slice(&now.to_be_bytes());
            for x in p[20..].iter_mut() {
                *x = 0xff;
            }
            s.seq = s.seq.wrapping_add(1);
            s.ts = s.ts.wrapping_add(160);
            s.ctr = s.ctr.wrapping_add(1);
            rep.sent[s.side as usize] += 1;
            if measuring {
                s.measured_sent += 1;
                rep.measured[s.side as usize] += 1;
            }
        }
        for k in dead {
            if let Some(s) = streams.remove(&k) {
                if s.measured_sent > 0 {
                    *rep.per_key_measured[s.side as usize].entry(s.port).or_insert(0) +=
                        s.measured_sent;
                }
            }
        }
        tx[0].flush();
        tx[1].flush();
        n_tick += 1;
        next += tick;
        let now_i = Instant::now();
        if next > now_i {
            std::thread::sleep(next - now_i);
        } else if now_i - next > Duration::from_millis(5) {
            rep.late_ticks += 1;
        }
    }
    for s in streams.values() {
        if s.measured_sent > 0 {
            *rep.per_key_measured[s.side as usize].entry(s.port).or_insert(0) += s.measured_sent;
        }
    }
    rep.errors = tx[0].errors + tx[1].errors;
    rep
}

fn bind(port: u16) -> UdpSocket {
    let s = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
        .unwrap_or_else(|e| panic!("bind 127.0.0.1:{port}: {e}"));
    set_buffers(&s, 16 << 20);
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    s
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: Option<T>) -> T {
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("bad value for {name}")),
        None => default.unwrap_or_else(|| panic!("missing {name}")),
    }
}

fn log(t0: Instant, msg: &str) {
    eprintln!("rtpload {:7.1}s {msg}", t0.elapsed().as_secs_f64());
}

fn media(args: &[String]) {
    let caller_port: u16 = arg(args, "--caller-port", None);
    let agent_port: u16 = arg(args, "--agent-port", None);
    let calls: u64 = arg(args, "--calls", None);
    let max_wait: f64 = arg(args, "--max-wait", Some(120.0));
    let settle: f64 = arg(args, "--settle", Some(3.0));
    let measure: f64 = arg(args, "--measure", Some(30.0));
    let linger: f64 = arg(args, "--linger", Some(5.0));
    let engine_ip = Ipv4Addr::LOCALHOST;
    let t0 = Instant::now();
    let sh = Arc::new(Shared {
        t0,
        phase: AtomicU8::new(0),
        stop: AtomicBool::new(false),
        last_rx: [
            (0..65536).map(|_| AtomicU64::new(0)).collect(),
            (0..65536).map(|_| AtomicU64::new(0)).collect(),
        ],
        relayed: [
            (0..65536).map(|_| AtomicBool::new(false)).collect(),
            (0..65536).map(|_| AtomicBool::new(false)).collect(),
        ],
        relayed_count: [AtomicU64::new(0), AtomicU64::new(0)],
        new_streams: Mutex::new(Vec::new()),
        rx_reports: Mutex::new(Vec::new()),
        tx_report: Mutex::new(None),
        measured_rx: AtomicU64::new(0),
    });
    let a = bind(caller_port);
    let b = bind(agent_port);
    let rx: Vec<_> = [(&a, SIDE_CALLER), (&b, SIDE_AGENT)]
        .into_iter()
        .map(|(s, side)| {
            let s = s.try_clone().unwrap();
            let sh = sh.clone();
            std::thread::spawn(move || receiver(sh, s, side))
        })
        .collect();
    let txh = {
        let sh = sh.clone();
        let socks = [a.try_clone().unwrap(), b.try_clone().unwrap()];
        std::thread::spawn(move || sender_loop(sh, socks, engine_ip))
    };
    // Ready marker for the driver.
    println!("{{\"ready\":true}}");
    log(t0, &format!("listening: callers on {caller_port}, agents on {agent_port}; waiting for {calls} calls flowing both ways"));
    let deadline = Instant::now() + Duration::from_secs_f64(max_wait);
    let mut last_print = Instant::now();
    let established = loop {
        let c = sh.relayed_count[0].load(Ordering::Relaxed);
        let g = sh.relayed_count[1].load(Ordering::Relaxed);
        if c >= calls && g >= calls {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        if last_print.elapsed() > Duration::from_secs(5) {
            last_print = Instant::now();
            let seen = |side: usize| sh.last_rx[side].iter().filter(|x| x.load(Ordering::Relaxed) != 0).count();
            log(t0, &format!("bridged streams: agent->caller {c}, caller->agent {g}; engine ports heard: caller side {}, agent side {}", seen(0), seen(1)));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let t_est = t0.elapsed().as_secs_f64();
    log(t0, &format!("established={established}; settling {settle}s"));
    std::thread::sleep(Duration::from_secs_f64(settle));
    log(t0, &format!("measuring for {measure}s"));
    let m0 = Instant::now();
    let unix = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    };
    let w_start = unix();
    sh.phase.store(1, Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs_f64(measure));
    sh.phase.store(2, Ordering::Relaxed);
    let window = m0.elapsed().as_secs_f64();
    let w_end = unix();
    // Drain: packets flagged in the window may still be queued (in the
    // engine's sockets or ours). Wait at least 1 s, then until no flagged
    // packet arrived for 1 s (at most 15 s).
    log(t0, "window closed; draining");
    let drain_start = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let mut last = sh.measured_rx.load(Ordering::Relaxed);
    while drain_start.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_secs(1));
        let now = sh.measured_rx.load(Ordering::Relaxed);
        if now == last {
            break;
        }
        last = now;
    }
    let drain_s = drain_start.elapsed().as_secs_f64();
    log(t0, &format!("drained in {drain_s:.1}s"));
    // Snapshot both sides now (the streams keep flowing, unflagged).
    let streams_at_end = [
        sh.relayed_count[0].load(Ordering::Relaxed),
        sh.relayed_count[1].load(Ordering::Relaxed),
    ];
    sh.phase.store(3, Ordering::Relaxed);
    let (txr, mut rxr) = loop {
        std::thread::sleep(Duration::from_millis(20));
        let t = sh.tx_report.lock().unwrap().clone();
        let r = sh.rx_reports.lock().unwrap().clone();
        if let (Some(t), 2) = (t, r.len()) {
            break (t, r);
        }
    };
    rxr.sort_by_key(|r| r.side);
    // Direction caller->agent: sent by side 0, received on side 1.
    let dir = |from: usize, to: usize| {
        let sent = txr.measured[from];
        let recv = rxr[to].measured;
        let mut streams_with_loss = 0u64;
        let mut worst = 0u64;
        for (k, s) in &txr.per_key_measured[from] {
            let r = rxr[to].per_key.get(k).copied().unwrap_or(0);
            if r < *s {
                streams_with_loss += 1;
                worst = worst.max(s - r);
            }
        }
        let h = &rxr[to].histo;
        format!(
            "{{\"sent\":{sent},\"received\":{recv},\"lost\":{},\"loss_pct\":{:.5},\"streams\":{},\"streams_with_loss\":{streams_with_loss},\"worst_stream_lost\":{worst},\"dups_or_late\":{},\"latency_us\":{{\"p50\":{:.0},\"p90\":{:.0},\"p99\":{:.0},\"p999\":{:.0},\"max\":{},\"over_200ms\":{}}}}}",
            sent as i64 - recv as i64,
            if sent > 0 { 100.0 * (sent as f64 - recv as f64) / sent as f64 } else { 0.0 },
            txr.per_key_measured[from].len(),
            rxr[to].dups_or_late,
            h.pct(0.5),
            h.pct(0.9),
            h.pct(0.99),
            h.pct(0.999),
            h.max_us,
            h.over
        )
    };
    let mut all = Histo::new();
    all.merge(&rxr[0].histo);
    all.merge(&rxr[1].histo);
    let measured_sent = txr.measured[0] + txr.measured[1];
    let measured_recv = rxr[0].measured + rxr[1].measured;
    println!(
        "{{\"window_start_unix\":{w_start:.3},\"window_end_unix\":{w_end:.3},\"established\":{established},\"t_established_s\":{t_est:.2},\"calls_expected\":{calls},\"bridged_streams\":{{\"agent_to_caller\":{},\"caller_to_agent\":{}}},\"window_s\":{window:.3},\"drain_s\":{drain_s:.1},\"caller_to_agent\":{},\"agent_to_caller\":{},\"pps_sent_by_endpoints\":{:.0},\"pps_received_by_endpoints\":{:.0},\"total_sent\":{},\"total_received_rtp\":{},\"other_packets\":{},\"send_errors\":{},\"streams_max\":{},\"late_ticks\":{}}}",
        streams_at_end[0],
        streams_at_end[1],
        dir(0, 1),
        dir(1, 0),
        measured_sent as f64 / window,
        measured_recv as f64 / window,
        txr.sent[0] + txr.sent[1],
        rxr[0].packets + rxr[1].packets,
        rxr[0].other + rxr[1].other,
        txr.errors,
        txr.streams_max,
        txr.late_ticks
    );
    log(t0, &format!("report printed; keeping the streams up for {linger}s"));
    std::thread::sleep(Duration::from_secs_f64(linger));
    sh.stop.store(true, Ordering::Relaxed);
    let _ = txh.join();
    for h in rx {
        let _ = h.join();
    }
}

fn sink(args: &[String]) {
    let port: u16 = arg(args, "--port", None);
    let seconds: f64 = arg(args, "--seconds", None);
    let s = bind(port);
    let t0 = Instant::now();
    let mut n = 0u64;
    let mut buf = [0u8; 2048];
    let end = t0 + Duration::from_secs_f64(seconds);
    println!("{{\"ready\":true}}");
    while Instant::now() < end {
        if let Ok((_, _)) = s.recv_from(&mut buf) {
            n += 1;
        }
    }
    let _: SocketAddr = s.local_addr().unwrap();
    println!("{{\"sink_packets\":{n}}}");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("media") => media(&args),
        Some("sink") => sink(&args),
        _ => {
            eprintln!("usage: rtpload media --caller-port A --agent-port B --calls N [--max-wait S] [--settle S] [--measure S] [--linger S]\n       rtpload sink --port P --seconds S");
            std::process::exit(2);
        }
    }
}
