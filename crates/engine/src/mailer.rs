//! The voicemail e-mail driver: a thin tokio task around the sans-IO
//! [`DeliveryQueue`] of `permanence-mailer`. It takes the messages the
//! calls recorded, sends them with lettre (SMTP, STARTTLS, AUTH), writes
//! each step to the records store (table `voicemail_deliveries`), resumes
//! the pending ones at start-up, and keeps the metrics
//! (`permanence_voicemail_deliveries_total{result}`, `..._pending`,
//! `permanence_voicemail_oldest_pending_age_seconds`).
//!
//! Log lines never carry the caller's number: only the practice, the call
//! id and the WAV's path.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use permanence_config::{MailPassword, MailSettings, StartTls};
use permanence_mailer::{
    compose, Delivery, DeliveryQueue, Input, Output, Policy, Status, VoicemailMessage,
};
use permanence_records::{RecorderHandle, VoicemailDeliveryRow};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::clock::Clock;

/// The longest sleep between two refreshes of the gauges.
const GAUGE_REFRESH: Duration = Duration::from_secs(15);

/// Where the calls hand their recorded messages over. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MailerHandle {
    tx: mpsc::UnboundedSender<VoicemailMessage>,
}

/// The driver's end of [`MailerHandle`].
#[derive(Debug)]
pub struct MailerInbox(mpsc::UnboundedReceiver<VoicemailMessage>);

/// A connected pair.
pub fn channel() -> (MailerHandle, MailerInbox) {
    let (tx, rx) = mpsc::unbounded_channel();
    (MailerHandle { tx }, MailerInbox(rx))
}

impl MailerHandle {
    /// Queues a recorded message for delivery; false if the driver is gone
    /// (no `[mail]`, or shutting down): the WAV stays on disk.
    pub fn deliver(&self, m: VoicemailMessage) -> bool {
        self.tx.send(m).is_ok()
    }
}

/// What the driver needs.
pub struct MailerParts {
    /// `[mail]`.
    pub settings: MailSettings,
    /// The records store (the queue's persistence), if any.
    pub records: Option<RecorderHandle>,
    /// The pending deliveries a previous run left.
    pub saved: Vec<VoicemailDeliveryRow>,
    /// Metrics.
    pub metrics: Arc<permanence_metrics::Metrics>,
    /// The wall clock.
    pub clock: Clock,
    /// Stops the driver.
    pub cancel: CancellationToken,
}

/// Starts the driver; `None` (and an error logged) if the SMTP transport
/// cannot be built.
pub fn start(inbox: MailerInbox, p: MailerParts) -> Option<JoinHandle<()>> {
    let transport = match transport(&p.settings) {
        Ok(t) => t,
        Err(e) => {
            warn!(event = "voicemail.mail_disabled", error = %e, "voicemail e-mail disabled: invalid [mail]");
            return None;
        }
    };
    let from = match p.settings.from.parse::<Mailbox>() {
        Ok(f) => f,
        Err(e) => {
            warn!(event = "voicemail.mail_disabled", error = %e, "voicemail e-mail disabled: invalid mail.from");
            return None;
        }
    };
    let policy = Policy {
        retry: p.settings.retry.clone(),
        expire_after: p.settings.expire_after,
    };
    let driver = Driver {
        queue: DeliveryQueue::new(policy),
        sender: Arc::new(Sender { transport, from }),
        records: p.records,
        metrics: p.metrics,
        clock: p.clock,
    };
    Some(tokio::spawn(driver.run(inbox, p.saved, p.cancel)))
}

/// The SMTP transport `[mail]` describes.
fn transport(s: &MailSettings) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    type T = AsyncSmtpTransport<Tokio1Executor>;
    let tls = |s: &MailSettings| TlsParameters::new(s.server.clone()).map_err(|e| e.to_string());
    let builder = match s.starttls {
        StartTls::Required => T::builder_dangerous(&s.server).tls(Tls::Required(tls(s)?)),
        StartTls::Opportunistic => T::builder_dangerous(&s.server).tls(Tls::Opportunistic(tls(s)?)),
        StartTls::Off => T::builder_dangerous(&s.server).tls(Tls::None),
    };
    let mut builder = builder.port(s.port).timeout(Some(s.timeout));
    if let (Some(user), Some(pw)) = (&s.username, &s.password) {
        builder = builder.credentials(Credentials::new(user.clone(), password(pw)?));
    }
    Ok(builder.build())
}

/// The SMTP password, read from its file if need be.
fn password(p: &MailPassword) -> Result<String, String> {
    match p {
        MailPassword::Inline(s) => Ok(s.clone()),
        MailPassword::File(path) => std::fs::read_to_string(path)
            .map(|s| s.trim_end_matches(['\r', '\n']).to_owned())
            .map_err(|e| format!("mail.password_file {}: {e}", path.display())),
    }
}

/// Builds and sends one e-mail.
struct Sender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Sender {
    /// Sends `m`'s e-mail with its WAV attached.
    async fn send(&self, m: &VoicemailMessage) -> Result<(), String> {
        let wav = tokio::fs::read(&m.wav)
            .await
            .map_err(|e| format!("cannot read the recording {}: {e}", m.wav.display()))?;
        let letter = compose(m);
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(letter.subject);
        for r in &m.recipients {
            let to = r
                .parse::<Mailbox>()
                .map_err(|e| format!("recipient {r}: {e}"))?;
            b = b.to(to);
        }
        let wav_type = ContentType::parse("audio/wav").map_err(|e| e.to_string())?;
        let email = b
            .multipart(
                MultiPart::mixed()
                    .singlepart(SinglePart::plain(letter.body))
                    .singlepart(Attachment::new(letter.attachment_name).body(wav, wav_type)),
            )
            .map_err(|e| e.to_string())?;
        self.transport
            .send(email)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// The task's state.
struct Driver {
    queue: DeliveryQueue,
    sender: Arc<Sender>,
    records: Option<RecorderHandle>,
    metrics: Arc<permanence_metrics::Metrics>,
    clock: Clock,
}

/// An attempt's result: the key, and the error if it failed.
type Done = (String, Result<(), String>);

impl Driver {
    async fn run(
        mut self,
        mut inbox: MailerInbox,
        saved: Vec<VoicemailDeliveryRow>,
        cancel: CancellationToken,
    ) {
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
        let restored = saved.len();
        for row in saved {
            match from_row(row) {
                Some(d) => self.queue.handle(Input::Restore(Box::new(d)), self.now()),
                None => warn!("voicemail delivery with an unknown status not restored"),
            }
        }
        if restored > 0 {
            info!(
                event = "voicemail.restored",
                pending = restored,
                "pending voicemail e-mails resumed"
            );
        }
        self.queue.handle_timeout(self.now());
        self.pump(&done_tx);
        loop {
            let sleep = self.sleep_for();
            tokio::select! {
                _ = cancel.cancelled() => return,
                m = inbox.0.recv() => match m {
                    Some(m) => self.queue.handle(Input::New(Box::new(m)), self.now()),
                    None => return,
                },
                Some((key, result)) = done_rx.recv() => self.finished(key, result),
                _ = tokio::time::sleep(sleep) => self.queue.handle_timeout(self.now()),
            }
            self.pump(&done_tx);
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.wall()
    }

    /// Until the queue's next deadline, at most [`GAUGE_REFRESH`].
    fn sleep_for(&self) -> Duration {
        self.queue
            .poll_timeout()
            .map(|t| (t - self.now()).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or(GAUGE_REFRESH)
            .min(GAUGE_REFRESH)
    }

    fn finished(&mut self, key: String, result: Result<(), String>) {
        let input = match result {
            Ok(()) => Input::Sent { key },
            Err(error) => {
                warn!(
                    event = "voicemail.delivery_failed",
                    call = %key,
                    error = %error,
                    "voicemail e-mail not delivered, will retry"
                );
                Input::Failed { key, error }
            }
        };
        self.queue.handle(input, self.now());
    }

    /// Carries out what the queue asks, then refreshes the gauges.
    fn pump(&mut self, done: &mpsc::UnboundedSender<Done>) {
        while let Some(out) = self.queue.poll_output() {
            match out {
                Output::Save(d) => self.save(&d),
                Output::Send(d) => self.send(*d, done.clone()),
                Output::Outcome { key, result } => {
                    self.metrics.voicemail().delivery(result.as_str());
                    if result == permanence_mailer::DeliveryResult::Delivered {
                        info!(event = "voicemail.delivered", call = %key, "voicemail e-mailed to the practice");
                    }
                }
            }
        }
        let age = self
            .queue
            .oldest_queued_at()
            .map_or(0.0, |t| (self.now() - t).num_milliseconds() as f64 / 1000.0);
        self.metrics
            .voicemail()
            .set_pending(self.queue.pending(), age);
    }

    fn save(&self, d: &Delivery) {
        log_step(d);
        if let Some(r) = &self.records {
            r.record_voicemail_delivery(to_row(d));
        }
    }

    fn send(&self, d: Delivery, done: mpsc::UnboundedSender<Done>) {
        let sender = self.sender.clone();
        tokio::spawn(async move {
            let result = sender.send(&d.message).await;
            let _ = done.send((d.message.call_id, result));
        });
    }
}

/// The log line of an expiry (never the number).
fn log_step(d: &Delivery) {
    let m = &d.message;
    if d.status == Status::Expired {
        warn!(
            event = "voicemail.expired",
            practice = %m.practice_id,
            call = %m.call_id,
            attempts = d.attempts,
            path = %m.wav.display(),
            "voicemail e-mail given up, the recording stays on disk"
        );
    }
}

/// The stored form of a delivery.
pub fn to_row(d: &Delivery) -> VoicemailDeliveryRow {
    let m = &d.message;
    VoicemailDeliveryRow {
        call_id: m.call_id.clone(),
        practice_id: m.practice_id.clone(),
        practice_name: m.practice_name.clone(),
        timezone: m.timezone.clone(),
        recipients: m.recipients.clone(),
        wav_path: m.wav.display().to_string(),
        caller: m.caller.clone(),
        recorded_at: m.recorded_at,
        duration_secs: m.duration_secs,
        triage: m.triage.clone(),
        status: d.status.as_str().to_owned(),
        attempts: d.attempts,
        queued_at: d.queued_at,
        next_attempt_at: d.next_attempt_at,
        last_attempt_at: d.last_attempt_at,
        last_error: d.last_error.clone(),
        closed_at: d.closed_at,
    }
}

/// A stored delivery; `None` if its status is unknown.
pub fn from_row(r: VoicemailDeliveryRow) -> Option<Delivery> {
    Some(Delivery {
        status: Status::parse(&r.status)?,
        attempts: r.attempts,
        queued_at: r.queued_at,
        next_attempt_at: r.next_attempt_at,
        last_attempt_at: r.last_attempt_at,
        last_error: r.last_error,
        closed_at: r.closed_at,
        message: VoicemailMessage {
            call_id: r.call_id,
            practice_id: r.practice_id,
            practice_name: r.practice_name,
            timezone: r.timezone,
            recipients: r.recipients,
            wav: PathBuf::from(r.wav_path),
            caller: r.caller,
            recorded_at: r.recorded_at,
            duration_secs: r.duration_secs,
            triage: r.triage,
        },
    })
}
