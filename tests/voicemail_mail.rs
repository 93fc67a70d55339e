//! Voicemail messages e-mailed to the practice, end to end: a patient
//! leaves a message at Dr Martin's (voicemail overflow), the engine
//! e-mails it through SMTP to an SMTP sink of the test (a minimal server
//! on 127.0.0.1: EHLO, MAIL, RCPT, DATA, QUIT). While the sink is down the
//! delivery is retried; it survives a SIGKILL of the engine; once the sink
//! is up the e-mail arrives with the WAV attached, the caller's number,
//! the time and the triage choice.

mod common;

use base64::Engine as _;
use common::{field, http_get, Engine, TestConfig};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MARTIN: &str = "Diversion: <sip:+33450000001@carrier.example>;reason=unconditional";

/// One e-mail the sink accepted.
#[derive(Debug, Clone)]
struct Mail {
    from: String,
    to: Vec<String>,
    data: String,
}

/// A minimal SMTP server on 127.0.0.1:`port` (no TLS, no AUTH), keeping
/// what it receives.
struct SmtpSink {
    mails: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpSink {
    fn start(port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind SMTP sink");
        let mails = Arc::new(Mutex::new(Vec::new()));
        let keep = mails.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let keep = keep.clone();
                std::thread::spawn(move || {
                    let _ = session(conn, &keep);
                });
            }
        });
        SmtpSink { mails }
    }

    /// Waits (at most `limit`) for a first e-mail.
    fn wait(&self, limit: Duration) -> Option<Mail> {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Some(m) = self.mails.lock().expect("mails").first() {
                return Some(m.clone());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }
}

/// One SMTP session.
fn session(conn: TcpStream, mails: &Mutex<Vec<Mail>>) -> std::io::Result<()> {
    let mut out = conn.try_clone()?;
    let mut lines = BufReader::new(conn);
    out.write_all(b"220 sink.test ESMTP\r\n")?;
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_string();
        let upper = cmd.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-sink.test\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
            b"250 ok\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            from = cmd[10..].trim().to_string();
            b"250 ok\r\n"
        } else if upper.starts_with("RCPT TO:") {
            to.push(cmd[8..].trim().to_string());
            b"250 ok\r\n"
        } else if upper.starts_with("RSET") {
            to.clear();
            b"250 ok\r\n"
        } else if upper == "DATA" {
            out.write_all(b"354 go ahead\r\n")?;
            let data = read_data(&mut lines)?;
            mails.lock().expect("mails").push(Mail {
                from: std::mem::take(&mut from),
                to: std::mem::take(&mut to),
                data,
            });
            b"250 queued\r\n"
        } else if upper.starts_with("QUIT") {
            out.write_all(b"221 bye\r\n")?;
            return Ok(());
        } else {
            b"502 not implemented\r\n"
        };
        out.write_all(reply)?;
    }
}

/// The message up to the lone `.`, dot-unstuffed.
fn read_data(lines: &mut BufReader<TcpStream>) -> std::io::Result<String> {
    let mut data = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line)? == 0 || line.trim_end_matches(['\r', '\n']) == "." {
            return Ok(data);
        }
        let l = line.strip_prefix('.').unwrap_or(&line);
        data.push_str(l.trim_end_matches(['\r', '\n']));
        data.push('\n');
    }
}

/// The MIME part whose headers contain `marker`: its headers and its body
/// decoded (base64, quoted-printable or as is).
fn part(data: &str, marker: &str) -> Option<(String, Vec<u8>)> {
    let start = data.find(marker)?;
    let head_start = data[..start].rfind("\n--").map_or(0, |i| i + 1);
    let rest = &data[head_start..];
    let rest = &rest[rest.find('\n')? + 1..];
    let (head, body) = rest.split_once("\n\n")?;
    let body = &body[..body.find("\n--").unwrap_or(body.len())];
    let lower = head.to_ascii_lowercase();
    let bytes = if lower.contains("content-transfer-encoding: base64") {
        let joined: String = body.split_whitespace().collect();
        base64::engine::general_purpose::STANDARD
            .decode(joined)
            .ok()?
    } else if lower.contains("content-transfer-encoding: quoted-printable") {
        quoted_printable(body)
    } else {
        body.as_bytes().to_vec()
    };
    Some((head.to_string(), bytes))
}

fn quoted_printable(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for line in s.split('\n') {
        let (line, soft) = match line.strip_suffix('=') {
            Some(l) => (l, true),
            None => (line, false),
        };
        let b = line.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'=' && i + 3 <= b.len() {
                if let Ok(v) = u8::from_str_radix(&line[i + 1..i + 3], 16) {
                    out.push(v);
                    i += 3;
                    continue;
                }
            }
            out.push(b[i]);
            i += 1;
        }
        if !soft {
            out.push(b'\n');
        }
    }
    out
}

/// The `Subject:` header, RFC 2047 words decoded.
fn subject(data: &str) -> String {
    let mut lines = data.lines().skip_while(|l| !l.starts_with("Subject:"));
    let mut raw = lines.next().unwrap_or_default()["Subject:".len()..].to_string();
    for l in lines.take_while(|l| l.starts_with(' ') || l.starts_with('\t')) {
        raw.push_str(l);
    }
    // Whitespace between two encoded words is dropped, kept elsewhere.
    let mut out = Vec::new();
    let mut last_encoded = None;
    for word in raw.split_whitespace() {
        let encoded = word
            .strip_prefix("=?utf-8?b?")
            .or_else(|| word.strip_prefix("=?UTF-8?B?"))
            .and_then(|w| w.strip_suffix("?="));
        if last_encoded.is_some() && !(last_encoded == Some(true) && encoded.is_some()) {
            out.push(b' ');
        }
        match encoded {
            Some(b64) => out.extend(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap_or_default(),
            ),
            None => out.extend(word.as_bytes()),
        }
        last_encoded = Some(encoded.is_some());
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Dr Martin open at all hours with short tones as greeting, menu (1 s
/// timeout, default "2" rendez-vous) and voicemail prompt; only Alice
/// (not registered) in 10 s, then voicemail; mail to the sink's port,
/// retried after 1 s then every 2 s.
fn config(smtp_port: u16) -> TestConfig {
    let mut cfg = TestConfig::demo();
    cfg.always_open("martin");
    cfg.tone_prompt("martin", "greeting", 0.5, 440.0);
    cfg.tone_prompt("martin", "triage", 0.5, 660.0);
    cfg.tone_prompt("martin", "voicemail", 0.3, 880.0);
    cfg.practice("martin")
        .get_mut("triage")
        .and_then(|t| t.as_table_mut())
        .expect("[triage]")
        .insert("timeout_seconds".into(), 1.into());
    cfg.steps("martin").truncate(1);
    cfg.routing("martin")
        .insert("max_wait_seconds".into(), 10.into());
    cfg.no_qualify();
    let mail = cfg.main_table("mail");
    mail.insert("port".into(), i64::from(smtp_port).into());
    mail.insert(
        "retry_seconds".into(),
        toml::Value::Array(vec![1.into(), 2.into()]),
    );
    mail.insert("timeout_seconds".into(), 5.into());
    cfg
}

/// The stored delivery of the call's message.
fn deliveries(engine: &Engine) -> Vec<permanence_records::VoicemailDeliveryRow> {
    let db = engine.data.join("permanence.db");
    permanence_records::RecordReader::open(&db)
        .and_then(|r| r.voicemail_deliveries(10))
        .unwrap_or_default()
}

/// The value of `series` on the engine's /metrics (NaN if absent).
fn metric(engine: &Engine, series: &str) -> f64 {
    let (_, text) = http_get(engine, "/metrics");
    common::metric(&text, series).unwrap_or(f64::NAN)
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

#[test]
fn voicemail_is_retried_survives_a_crash_and_arrives_with_its_wav() {
    let smtp_port = common::free_port();
    let cfg = config(smtp_port);
    let engine = Engine::start(&cfg, &[]);

    // The patient: 0.5 s greeting, 0.5 s menu + 1 s timeout, 10 s in the
    // queue, the voicemail prompt, then ~3 s of message.
    let (_rtp, carrier) = common::patient(
        &engine,
        MARTIN,
        "carrier_call.xml",
        0x55,
        &["-d", "16000"],
        Duration::from_secs(60),
    );
    let recorded = engine
        .wait_event("voicemail.recorded", Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no voicemail.recorded\n{}", engine.dump()));
    let wav_path = engine.dir().join(field(&recorded, "path"));
    common::joined(carrier, "carrier");

    // The sink is down: attempts fail and are retried.
    assert!(
        engine
            .wait_n(
                "voicemail.delivery_failed",
                2,
                Duration::from_secs(15),
                |_| true
            )
            .is_some(),
        "no retries\n{}",
        engine.dump()
    );
    let failed = metric(
        &engine,
        r#"permanence_voicemail_deliveries_total{result="failed"}"#,
    );
    assert!(failed >= 2.0, "failed = {failed}");
    assert_eq!(
        metric(&engine, "permanence_voicemail_deliveries_pending"),
        1.0
    );
    // No log line carries the caller's number.
    assert!(
        !engine.dump().contains("+33612345678"),
        "caller number in clear in the logs"
    );
    // Persisted as pending, with its attempts.
    assert!(
        wait_until(Duration::from_secs(5), || deliveries(&engine)
            .first()
            .is_some_and(|d| d.status == "pending" && d.attempts >= 2)),
        "{:?}",
        deliveries(&engine)
    );

    // A crash: nothing is lost.
    let engine = engine.crash_and_restart(&cfg, &[]);
    let restored = engine
        .wait_event("voicemail.restored", Duration::from_secs(5))
        .unwrap_or_else(|| panic!("not restored\n{}", engine.dump()));
    assert_eq!(restored["pending"], 1, "{restored}");
    assert!(engine
        .wait_event("voicemail.delivery_failed", Duration::from_secs(10))
        .is_some());

    // The sink comes up: the message is delivered.
    let sink = SmtpSink::start(smtp_port);
    let mail = sink
        .wait(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("no e-mail\n{}", engine.dump()));
    assert!(engine
        .wait_event("voicemail.delivered", Duration::from_secs(5))
        .is_some());
    assert_eq!(mail.from, "<permanence@telesecretariat.example>");
    assert_eq!(
        mail.to,
        [
            "<secretariat@cabinet-martin.fr>",
            "<dr.martin@cabinet-martin.fr>"
        ]
    );
    assert_eq!(
        subject(&mail.data),
        "Nouveau message vocal — Cabinet du Dr Martin"
    );
    let (_, body) = part(&mail.data, "text/plain").expect("text part");
    let body = String::from_utf8(body).expect("utf-8 body");
    assert!(
        body.contains("Numéro de l'appelant : +33612345678"),
        "{body}"
    );
    assert!(
        body.contains("Choix du patient : rendez-vous (touche 2)"),
        "{body}"
    );
    assert!(body.contains("(Europe/Paris)"), "{body}");
    assert!(body.contains("Durée du message : "), "{body}");
    // The attachment is the WAV on disk, byte for byte.
    let (head, wav) = part(&mail.data, "audio/wav").expect("WAV part");
    assert!(head.to_ascii_lowercase().contains("attachment"), "{head}");
    assert!(head.contains("message-vocal-"), "{head}");
    assert_eq!(&wav[..4], b"RIFF");
    assert_eq!(&wav[8..12], b"WAVE");
    let on_disk = std::fs::read(&wav_path).expect("WAV on disk");
    assert_eq!(wav, on_disk);

    // Closed: delivered, the number no longer stored, counted, nothing
    // pending; delivered once only.
    assert!(wait_until(Duration::from_secs(5), || deliveries(&engine)
        .first()
        .is_some_and(|d| d.status == "delivered" && d.caller.is_none())));
    assert_eq!(
        metric(
            &engine,
            r#"permanence_voicemail_deliveries_total{result="delivered"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(&engine, "permanence_voicemail_deliveries_pending"),
        0.0
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(sink.mails.lock().expect("mails").len(), 1);
}
