//! Audio prompts: 8 kHz mono 16-bit WAV files pre-encoded at load time into
//! 20 ms G.711 frames for both laws, so that playback never encodes.

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::g711::{self, Codec};

/// Samples per second of every prompt (G.711 narrowband).
pub const SAMPLE_RATE: u32 = 8000;
/// Samples (and G.711 bytes) in one 20 ms frame.
pub const FRAME_SAMPLES: usize = 160;
/// Longest prompt accepted (30 minutes), to bound memory on a bad file.
pub const MAX_PROMPT_SECONDS: u32 = 30 * 60;

/// Why a prompt could not be loaded. Every message is self-contained: it
/// names the source (file path or label) and, for a wrong format, the actual
/// format found and the one expected.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// The file could not be read.
    #[error("prompt {source_name}: cannot read file: {error}")]
    Io {
        /// File path or label of the prompt.
        source_name: String,
        /// Underlying I/O error.
        #[source]
        error: std::io::Error,
    },
    /// The bytes are not a WAV file hound can read.
    #[error("prompt {source_name}: not a valid WAV file: {error}")]
    Wav {
        /// File path or label of the prompt.
        source_name: String,
        /// Underlying decoder error.
        #[source]
        error: hound::Error,
    },
    /// A WAV file, but not 8 kHz mono 16-bit integer PCM.
    #[error(
        "prompt {source_name}: unsupported WAV format {actual}; expected 8000 Hz, mono, 16-bit integer PCM (convert with: sox in.wav -r 8000 -c 1 -b 16 out.wav)"
    )]
    UnsupportedFormat {
        /// File path or label of the prompt.
        source_name: String,
        /// The format found, e.g. "44100 Hz, 2 channels, 24-bit integer".
        actual: String,
    },
    /// The WAV file holds no audio.
    #[error("prompt {source_name}: WAV file contains no audio samples")]
    Empty {
        /// File path or label of the prompt.
        source_name: String,
    },
    /// The WAV file is longer than [`MAX_PROMPT_SECONDS`].
    #[error("prompt {source_name}: WAV file is too long ({seconds} s, at most {max} s)")]
    TooLong {
        /// File path or label of the prompt.
        source_name: String,
        /// Duration found, in seconds.
        seconds: u64,
        /// Maximum accepted, in seconds.
        max: u32,
    },
}

/// An audio prompt, pre-encoded as 20 ms G.711 frames in both laws.
///
/// Immutable once loaded; share it between calls as `Arc<Prompt>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Prompt {
    name: String,
    samples: usize,
    pcmu: Box<[u8]>,
    pcma: Box<[u8]>,
}

impl std::fmt::Debug for Prompt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prompt")
            .field("name", &self.name)
            .field("samples", &self.samples)
            .field("frames", &self.frame_count())
            .finish()
    }
}

impl Prompt {
    /// Loads an 8 kHz mono 16-bit PCM WAV file.
    pub fn from_wav_file(path: impl AsRef<Path>) -> Result<Self, PromptError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|error| PromptError::Io {
            source_name: name.clone(),
            error,
        })?;
        Self::from_wav_bytes_named(&name, &bytes)
    }

    /// Loads an 8 kHz mono 16-bit PCM WAV image held in memory (errors name
    /// it `<memory>`; see [`Prompt::from_wav_bytes_named`]).
    pub fn from_wav_bytes(bytes: &[u8]) -> Result<Self, PromptError> {
        Self::from_wav_bytes_named("<memory>", bytes)
    }

    /// Loads an 8 kHz mono 16-bit PCM WAV image held in memory; `name`
    /// labels the prompt in errors and in [`Prompt::name`].
    pub fn from_wav_bytes_named(name: &str, bytes: &[u8]) -> Result<Self, PromptError> {
        let wav_err = |error| PromptError::Wav {
            source_name: name.to_owned(),
            error,
        };
        let reader = hound::WavReader::new(Cursor::new(bytes)).map_err(wav_err)?;
        let spec = reader.spec();
        if spec.sample_rate != SAMPLE_RATE
            || spec.channels != 1
            || spec.bits_per_sample != 16
            || spec.sample_format != hound::SampleFormat::Int
        {
            let kind = match spec.sample_format {
                hound::SampleFormat::Int => "integer",
                hound::SampleFormat::Float => "float",
            };
            return Err(PromptError::UnsupportedFormat {
                source_name: name.to_owned(),
                actual: format!(
                    "{} Hz, {} channel{}, {}-bit {}",
                    spec.sample_rate,
                    spec.channels,
                    if spec.channels == 1 { "" } else { "s" },
                    spec.bits_per_sample,
                    kind
                ),
            });
        }
        let declared = reader.len() as u64;
        if declared > u64::from(MAX_PROMPT_SECONDS) * u64::from(SAMPLE_RATE) {
            return Err(PromptError::TooLong {
                source_name: name.to_owned(),
                seconds: declared / u64::from(SAMPLE_RATE),
                max: MAX_PROMPT_SECONDS,
            });
        }
        // The declared length is bounded above and cannot exceed the bytes
        // present by much (hound stops at the end of data), so reserving the
        // smaller of the two is safe.
        let mut pcm = Vec::with_capacity((declared as usize).min(bytes.len() / 2));
        for s in reader.into_samples::<i16>() {
            pcm.push(s.map_err(wav_err)?);
        }
        if pcm.is_empty() {
            return Err(PromptError::Empty {
                source_name: name.to_owned(),
            });
        }
        Ok(Self::from_pcm(name, &pcm))
    }

    /// Builds a prompt from 8 kHz linear PCM samples. The last frame is
    /// padded with silence. An empty slice gives a prompt with no frames.
    pub fn from_pcm(name: &str, pcm: &[i16]) -> Self {
        let frames = pcm.len().div_ceil(FRAME_SAMPLES);
        let mut pcmu = vec![g711::ULAW_SILENCE; frames * FRAME_SAMPLES];
        let mut pcma = vec![g711::ALAW_SILENCE; frames * FRAME_SAMPLES];
        g711::encode_into(Codec::Pcmu, pcm, &mut pcmu);
        g711::encode_into(Codec::Pcma, pcm, &mut pcma);
        Prompt {
            name: name.to_owned(),
            samples: pcm.len(),
            pcmu: pcmu.into_boxed_slice(),
            pcma: pcma.into_boxed_slice(),
        }
    }

    /// A prompt of digital silence lasting `duration` (rounded up to 20 ms).
    pub fn silence(duration: Duration) -> Self {
        let samples = (duration.as_micros() * u128::from(SAMPLE_RATE) / 1_000_000) as usize;
        Self::from_pcm("silence", &vec![0i16; samples])
    }

    /// Convenience: wraps the prompt in an `Arc` for sharing.
    pub fn shared(self) -> Arc<Self> {
        Arc::new(self)
    }

    /// The label given at load time (file path, or embedded prompt name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of audio samples loaded (before padding to whole frames).
    pub fn sample_count(&self) -> usize {
        self.samples
    }

    /// Number of 20 ms frames.
    pub fn frame_count(&self) -> usize {
        self.pcmu.len() / FRAME_SAMPLES
    }

    /// Playing time (whole 20 ms frames).
    pub fn duration(&self) -> Duration {
        Duration::from_millis(self.frame_count() as u64 * 20)
    }

    /// Frame `index` (20 ms, 160 bytes) encoded with `codec`, or `None` past
    /// the end.
    #[inline]
    pub fn frame(&self, codec: Codec, index: usize) -> Option<&[u8; FRAME_SAMPLES]> {
        let data = match codec {
            Codec::Pcmu => &self.pcmu,
            Codec::Pcma => &self.pcma,
        };
        let start = index.checked_mul(FRAME_SAMPLES)?;
        let end = start.checked_add(FRAME_SAMPLES)?;
        data.get(start..end)?.try_into().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(spec: hound::WavSpec, samples: &[i32]) -> Vec<u8> {
        let mut cur = Cursor::new(Vec::new());
        {
            let mut w = hound::WavWriter::new(&mut cur, spec).unwrap();
            for &s in samples {
                w.write_sample(s).unwrap();
            }
            w.finalize().unwrap();
        }
        cur.into_inner()
    }

    fn spec(rate: u32, ch: u16, bits: u16) -> hound::WavSpec {
        hound::WavSpec {
            channels: ch,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: hound::SampleFormat::Int,
        }
    }

    #[test]
    fn loads_and_pre_encodes_both_laws() {
        let samples: Vec<i32> = (0..400)
            .map(|i| if i % 2 == 0 { 1000 } else { -1000 })
            .collect();
        let p = Prompt::from_wav_bytes(&wav(spec(8000, 1, 16), &samples)).unwrap();
        assert_eq!(p.sample_count(), 400);
        assert_eq!(p.frame_count(), 3);
        assert_eq!(p.duration(), Duration::from_millis(60));
        let f0 = p.frame(Codec::Pcmu, 0).unwrap();
        assert_eq!(f0[0], g711::ulaw_encode(1000));
        assert_eq!(f0[1], g711::ulaw_encode(-1000));
        let a0 = p.frame(Codec::Pcma, 0).unwrap();
        assert_eq!(a0[0], g711::alaw_encode(1000));
        // Last frame: 80 samples of audio then silence padding.
        let last = p.frame(Codec::Pcma, 2).unwrap();
        assert_eq!(last[79], g711::alaw_encode(-1000));
        assert_eq!(last[80], g711::ALAW_SILENCE);
        assert!(p.frame(Codec::Pcmu, 3).is_none());
        assert!(p.frame(Codec::Pcmu, usize::MAX).is_none());
    }

    #[test]
    fn rejects_other_formats_naming_them() {
        let err = Prompt::from_wav_bytes_named("hold.wav", &wav(spec(44100, 2, 16), &[0, 0]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("hold.wav"), "{err}");
        assert!(
            err.contains("44100 Hz, 2 channels, 16-bit integer"),
            "{err}"
        );
        assert!(err.contains("expected 8000 Hz, mono, 16-bit"), "{err}");

        let err = Prompt::from_wav_bytes(&wav(spec(8000, 1, 8), &[0, 1]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("8000 Hz, 1 channel, 8-bit integer"), "{err}");

        let float = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut cur = Cursor::new(Vec::new());
        {
            let mut w = hound::WavWriter::new(&mut cur, float).unwrap();
            w.write_sample(0.5f32).unwrap();
            w.finalize().unwrap();
        }
        let err = Prompt::from_wav_bytes(cur.get_ref())
            .unwrap_err()
            .to_string();
        assert!(err.contains("32-bit float"), "{err}");
    }

    #[test]
    fn rejects_garbage_empty_and_missing() {
        assert!(matches!(
            Prompt::from_wav_bytes(b"not a wav"),
            Err(PromptError::Wav { .. })
        ));
        assert!(matches!(
            Prompt::from_wav_bytes(&wav(spec(8000, 1, 16), &[])),
            Err(PromptError::Empty { .. })
        ));
        let err = Prompt::from_wav_file("/nonexistent/dir/x.wav").unwrap_err();
        assert!(err.to_string().contains("/nonexistent/dir/x.wav"));
        // Truncated data chunk.
        let mut bytes = wav(spec(8000, 1, 16), &[1, 2, 3, 4, 5, 6, 7, 8]);
        bytes.truncate(bytes.len() - 3);
        let _ = Prompt::from_wav_bytes(&bytes);
    }

    #[test]
    fn silence_prompt() {
        let p = Prompt::silence(Duration::from_millis(50));
        assert_eq!(p.frame_count(), 3);
        assert!(p.frame(Codec::Pcmu, 2).unwrap().iter().all(|&b| b == 0xFF));
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = Prompt::from_wav_bytes(&bytes);
        }

        #[test]
        fn mutated_wav_never_panics(
            idx in proptest::collection::vec((0usize..200, proptest::num::u8::ANY), 1..8),
            cut in 0usize..200,
        ) {
            let mut bytes = wav(spec(8000, 1, 16), &(0..60).collect::<Vec<i32>>());
            for (i, v) in idx {
                if let Some(b) = bytes.get_mut(i) { *b = v; }
            }
            bytes.truncate(bytes.len().saturating_sub(cut));
            let _ = Prompt::from_wav_bytes(&bytes);
        }
    }
}
