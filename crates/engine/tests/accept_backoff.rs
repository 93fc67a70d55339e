//! The stream accept loop at the descriptor limit (EMFILE): it backs off
//! instead of spinning, logs the condition once (then at most every 10 s),
//! and says when it accepts again. Runs in its own process: it lowers this
//! process's descriptor limit with `prlimit`.

use permanence_engine::streams::{self, Kind, StreamFront, StreamSettings};
use permanence_sip::gate::GateSettings;
use permanence_sip::guard::{FrontDoor, GuardStats};
use permanence_sip::stream::ConnLimits;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn text(&self) -> String {
        self.0
            .lock()
            .map(|v| String::from_utf8_lossy(&v).to_string())
            .unwrap_or_default()
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn set_nofile(soft: usize, hard: usize) {
    let ok = std::process::Command::new("prlimit")
        .arg("--pid")
        .arg(std::process::id().to_string())
        .arg(format!("--nofile={soft}:{hard}"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "prlimit");
}

/// The soft and hard descriptor limits of this process.
fn nofile() -> (usize, usize) {
    let text = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let line = text
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap_or_default();
    let f: Vec<usize> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (
        f.first().copied().unwrap_or(1024),
        f.get(1).copied().unwrap_or(1024),
    )
}

/// CPU time (user + system) of this process.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

#[test]
fn accept_backs_off_at_the_descriptor_limit() {
    if !cfg!(target_os = "linux") {
        return;
    }
    let lines = Lines::default();
    let writer = lines.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let door = Arc::new(FrontDoor::new(
            GateSettings::default(),
            Box::new(|_| false),
            Box::new(|| false),
            Box::new(Vec::new),
            String::new(),
        ));
        let front = Arc::new(StreamFront::new(
            StreamSettings {
                limits: ConnLimits {
                    total: 10_000,
                    per_source: 10_000,
                },
                idle: Duration::from_secs(60),
            },
            door,
            Arc::new(GuardStats::default()),
        ));
        let endpoint = rsipstack::EndpointBuilder::new().build();
        let listener = streams::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let addr = listener.local_addr().expect("addr");
        // Forty clients wait in the backlog.
        let mut clients: Vec<std::net::TcpStream> = (0..40)
            .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
            .collect();
        let (soft, hard) = nofile();
        let fds = open_fds();
        set_nofile(fds + 4, hard);
        let cancel = tokio_util::sync::CancellationToken::new();
        let cpu0 = cpu_time();
        streams::spawn_listener(
            front.clone(),
            listener,
            Kind::Tcp,
            endpoint.inner.clone(),
            cancel.clone(),
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        let cpu = cpu_time() - cpu0;
        let accepted = front.stats.accepted.load(Ordering::Relaxed);
        let errors = front.stats.accept_errors.load(Ordering::Relaxed);
        let failing = lines.text().matches("sip.accept_failing").count();
        eprintln!(
            "limit {} descriptors: {accepted} accepted, {errors} accept errors in 3 s, {failing} log lines, CPU {cpu:?}",
            fds + 4
        );
        assert!((1..40).contains(&accepted), "accepted {accepted}");
        assert!((3..=20).contains(&errors), "backed off: {errors} errors in 3 s");
        assert_eq!(failing, 1, "one line when it starts:\n{}", lines.text());
        assert!(cpu < Duration::from_millis(500), "no busy loop: {cpu:?}");
        // Descriptors come back: the loop accepts again and says so.
        clients.truncate(5);
        set_nofile(soft, hard);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(
            lines.text().contains("sip.accept_recovered"),
            "{}",
            lines.text()
        );
        cancel.cancel();
    });
}
