//! Recording of what a leg's far end sends, to an 8 kHz mono 16-bit WAV.
//!
//! The leg task decodes each audio packet into fixed 160-sample chunks and
//! hands them to a writer running on tokio's blocking pool through a bounded
//! `std::sync::mpsc::sync_channel` (its slots are allocated once, when the
//! recording starts; `try_send` never blocks and never allocates). A full
//! channel (disk stalled for more than the buffered seconds) drops audio and
//! counts it rather than stalling the RTP path. The writer creates the file,
//! writes through hound's buffered writer and finalises the header when the
//! recording stops, the maximum length is reached or the leg closes.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::g711::Codec;
use crate::MediaEvent;

/// Samples per chunk sent to the writer.
pub(crate) const CHUNK: usize = 160;
/// Chunks buffered between the leg task and the writer (5 s of audio).
const QUEUE_CHUNKS: usize = 250;

/// Why a recording ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingEnd {
    /// `stop_recording()` was called (or a new recording replaced it).
    Stopped,
    /// The maximum length was reached.
    MaxDuration,
    /// The leg was closed.
    LegClosed,
}

// Chunks travel by value through preallocated channel slots: boxing the
// large variant would allocate per packet, which is what we avoid.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Msg {
    Audio { len: u16, samples: [i16; CHUNK] },
    End(RecordingEnd),
}

/// Recording state held by the leg task.
pub(crate) struct Recorder {
    tx: SyncSender<Msg>,
    remaining: u64,
    pub(crate) dropped: u64,
}

impl Recorder {
    /// Starts a writer for `path`, limited to `max` of audio.
    pub(crate) fn start(path: PathBuf, max: Duration, events: mpsc::Sender<MediaEvent>) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE_CHUNKS);
        let remaining = (max.as_millis().min(u128::from(u64::MAX / 8)) as u64) * 8;
        tokio::task::spawn_blocking(move || {
            let ev = match write_wav(&path, rx) {
                Ok((samples, reason)) => MediaEvent::RecordingFinished {
                    path,
                    duration: Duration::from_millis(samples / 8),
                    reason,
                },
                Err(e) => MediaEvent::RecordingFailed {
                    path,
                    error: e.to_string(),
                },
            };
            let _ = events.try_send(ev);
        });
        Recorder {
            tx,
            remaining,
            dropped: 0,
        }
    }

    /// Decodes `payload` (law `codec`) and queues it. Returns `false` once
    /// the maximum length is reached (the caller then calls `finish`).
    pub(crate) fn push(&mut self, codec: Codec, payload: &[u8]) -> bool {
        for part in payload.chunks(CHUNK) {
            if self.remaining == 0 {
                return false;
            }
            let n = (part.len() as u64).min(self.remaining) as usize;
            let mut samples = [0i16; CHUNK];
            let n = crate::g711::decode_into(codec, part.get(..n).unwrap_or(part), &mut samples);
            self.remaining -= n as u64;
            match self.tx.try_send(Msg::Audio {
                len: n as u16,
                samples,
            }) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => self.dropped += n as u64,
                Err(TrySendError::Disconnected(_)) => return false,
            }
        }
        self.remaining > 0
    }

    /// Ends the recording; the writer finalises the file and reports.
    pub(crate) fn finish(self, reason: RecordingEnd) {
        let _ = self.tx.try_send(Msg::End(reason));
    }
}

fn write_wav(path: &PathBuf, rx: Receiver<Msg>) -> Result<(u64, RecordingEnd), hound::Error> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec)?;
    let mut written = 0u64;
    let mut reason = RecordingEnd::LegClosed;
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Audio { len, samples } => {
                for &s in samples.iter().take(len as usize) {
                    w.write_sample(s)?;
                }
                written += u64::from(len);
            }
            Msg::End(r) => {
                reason = r;
                break;
            }
        }
    }
    w.finalize()?;
    Ok((written, reason))
}
