//! A caller's voicemail message: where it is written, and its verdict
//! (recorded, or failed), which is never reported before the WAV file is
//! on disk.

use super::caller::Caller;
use chrono::{DateTime, Utc};
use permanence_acd::CallId;
use permanence_media::{Leg, MediaEvent};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tracing::{info, warn};

/// The call's recording, if one was started.
#[derive(Debug, Default)]
pub struct Voicemail {
    path: Option<PathBuf>,
    /// When the recording started (wall clock).
    started_at: Option<DateTime<Utc>>,
    /// The media engine gave its verdict.
    done: bool,
    /// The message's length, once the WAV is finalised.
    recorded: Option<Duration>,
}

impl Voicemail {
    /// Starts recording the caller into
    /// `dir/<practice>/<UTC time>-<call>.wav` for at most `max`.
    pub async fn start(
        &mut self,
        dir: &Path,
        practice: &str,
        call: CallId,
        at: DateTime<Utc>,
        leg: &Leg,
        max: Duration,
    ) {
        let dir = dir.join(practice);
        let path = dir.join(format!("{}-{}.wav", at.format("%Y%m%dT%H%M%SZ"), call.0));
        let started =
            tokio::fs::create_dir_all(&dir).await.is_ok() && leg.record(&path, max).is_ok();
        if started {
            self.path = Some(path);
            self.started_at = Some(at);
        } else {
            warn!(call = call.0, dir = %dir.display(), "cannot record voicemail");
        }
    }

    /// The media engine's verdict on the recording at `path`.
    pub fn verdict(
        &mut self,
        practice: &str,
        call_id: &str,
        path: &Path,
        verdict: Result<Duration, &str>,
    ) {
        self.done = true;
        if let Ok(d) = verdict {
            self.recorded = Some(d);
        }
        log(practice, call_id, path, verdict);
    }

    /// The finalised message: its WAV, when it started and its length;
    /// `None` without one (or if the recording failed).
    pub fn message(&self) -> Option<(&Path, DateTime<Utc>, Duration)> {
        Some((self.path.as_deref()?, self.started_at?, self.recorded?))
    }

    /// The message's path for the call's log line (empty without one).
    pub fn path_text(&self) -> String {
        self.path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }

    /// At the end of the call: stops a recording still running and waits
    /// (bounded) for the recorder to finalise the WAV, so the message is
    /// never reported before it is on disk.
    pub async fn confirm(&mut self, practice: &str, call_id: &str, caller: &mut Caller) {
        let Some(path) = self.path.clone().filter(|_| !self.done) else {
            return;
        };
        let _ = caller.media.stop_recording();
        let waited = tokio::time::timeout(Duration::from_secs(3), async {
            while let Some(ev) = caller.media_events.recv().await {
                match ev {
                    MediaEvent::RecordingFinished { duration, .. } => return Ok(duration),
                    MediaEvent::RecordingFailed { error, .. } => return Err(error),
                    _ => {}
                }
            }
            Err("media leg closed".to_string())
        })
        .await;
        match waited {
            Ok(v) => self.verdict(
                practice,
                call_id,
                &path,
                v.as_ref().copied().map_err(String::as_str),
            ),
            Err(_) => warn!(call_id, path = %path.display(), "voicemail recording not confirmed"),
        }
    }
}

/// Logs the verdict of a voicemail recording.
fn log(practice: &str, call_id: &str, path: &Path, verdict: Result<Duration, &str>) {
    match verdict {
        Ok(duration) => info!(
            event = "voicemail.recorded",
            practice = %practice,
            call_id,
            path = %path.display(),
            seconds = duration.as_secs_f64(),
            "voicemail message recorded"
        ),
        Err(error) => warn!(call_id, path = %path.display(), error, "voicemail recording failed"),
    }
}
