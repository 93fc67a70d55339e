//! Load check of playout: N legs playing looped hold music (one timer per
//! leg, absolute 20 ms deadlines) to a loopback sink that never reads (the
//! kernel drops what overflows its buffer), for S seconds. Prints the CPU
//! time used by the process per packet sent and the achieved packet rate.
//!
//! Run: `CARGO_TARGET_DIR=/work/target-media cargo run --release -p permanence-media --example playout_load -- 500 5`

use std::time::{Duration, Instant};

use permanence_media::{Codec, Language, MediaConfig, MediaEngine, Playlist, Prompts, RemoteMedia};

/// User + system CPU time of this process, from /proc/self/stat.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10)) // USER_HZ = 100 on Linux
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let legs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let secs: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let hold = Prompts::get(Language::Fr)
        .expect("prompts")
        .hold_music
        .clone();
    let mut cfg = MediaConfig::new("127.0.0.1".parse().unwrap(), 43000, 47999);
    cfg.rtp_timeout = Duration::from_secs(3600);
    let engine = MediaEngine::new(cfg).expect("engine");
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").expect("sink");
    let sink_addr = sink.local_addr().expect("addr");
    let mut open = Vec::with_capacity(legs);
    for _ in 0..legs {
        let (leg, ev) = engine.open_leg().expect("leg");
        leg.set_remote(RemoteMedia::new(sink_addr, Codec::Pcmu))
            .expect("remote");
        leg.play(Playlist::looping(hold.clone())).expect("play");
        open.push((leg, ev));
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // settle
    let sent0: u64 = open.iter().map(|(l, _)| l.stats().packets_out).sum();
    let (t0, c0) = (Instant::now(), cpu_time().unwrap_or_default());
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (t1, c1) = (Instant::now(), cpu_time().unwrap_or_default());
    let sent1: u64 = open.iter().map(|(l, _)| l.stats().packets_out).sum();
    let errors: u64 = open.iter().map(|(l, _)| l.stats().send_errors).sum();
    let wall = (t1 - t0).as_secs_f64();
    let cpu = (c1 - c0).as_secs_f64();
    let pkts = (sent1 - sent0) as f64;
    println!(
        "legs={legs} wall={wall:.2}s packets={pkts} rate={:.0}/s (expected {}/s) send_errors={errors} cpu={cpu:.2}s ({:.1}% of one core) cpu_per_packet={:.2}us",
        pkts / wall,
        legs * 50,
        100.0 * cpu / wall,
        1e6 * cpu / pkts.max(1.0)
    );
    drop(sink);
}
