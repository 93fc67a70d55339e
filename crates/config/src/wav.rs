//! Reads the header of a WAV file (RIFF/WAVE, `fmt ` and `data` chunks)
//! without decoding it, to check that a prompt is 8 kHz mono 16-bit PCM.

use std::path::Path;

/// Largest prompt file accepted, in bytes (about 17 minutes of 8 kHz
/// 16-bit mono audio).
pub const MAX_PROMPT_BYTES: u64 = 16 * 1024 * 1024;

/// The format of a WAV file, from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavInfo {
    /// `1` for PCM (`0xFFFE` extensible files are reported with their
    /// sub-format tag).
    pub format_tag: u16,
    /// Number of channels.
    pub channels: u16,
    /// Samples per second.
    pub sample_rate: u32,
    /// Bits per sample.
    pub bits_per_sample: u16,
    /// Length of the `data` chunk in bytes (clamped to the file length).
    pub data_bytes: u32,
}

impl WavInfo {
    /// Whether this is the prompt format the media engine plays: 8000 Hz,
    /// mono, 16-bit PCM.
    pub fn is_telephony_pcm(&self) -> bool {
        self.format_tag == 1
            && self.channels == 1
            && self.sample_rate == 8000
            && self.bits_per_sample == 16
    }

    /// Audio length.
    pub fn duration(&self) -> std::time::Duration {
        let frame = u64::from(self.channels) * u64::from(self.bits_per_sample / 8);
        let per_sec = frame * u64::from(self.sample_rate);
        if per_sec == 0 {
            return std::time::Duration::ZERO;
        }
        std::time::Duration::from_millis(u64::from(self.data_bytes) * 1000 / per_sec)
    }

    /// A short description: `8000 Hz, 1 channel(s), 16-bit PCM`.
    pub fn describe(&self) -> String {
        let fmt = match self.format_tag {
            1 => "PCM".to_string(),
            3 => "float".to_string(),
            6 => "A-law".to_string(),
            7 => "µ-law".to_string(),
            t => format!("format 0x{t:04x}"),
        };
        format!(
            "{} Hz, {} channel(s), {}-bit {}",
            self.sample_rate, self.channels, self.bits_per_sample, fmt
        )
    }
}

/// Why a WAV header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WavError {
    /// The file could not be read.
    #[error("{0}")]
    Io(String),
    /// The file is larger than [`MAX_PROMPT_BYTES`].
    #[error("file too large ({0} bytes, at most {MAX_PROMPT_BYTES})")]
    TooLarge(u64),
    /// Not a RIFF/WAVE file.
    #[error("not a WAV file (no RIFF/WAVE header)")]
    NotWave,
    /// A chunk runs past the end of the file before `fmt ` was read.
    #[error("truncated WAV file")]
    Truncated,
    /// No `fmt ` chunk (or one too short).
    #[error("WAV file has no valid fmt chunk")]
    NoFormat,
    /// No `data` chunk, or an empty one.
    #[error("WAV file has no audio data")]
    NoData,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([*s.first()?, *s.get(1)?]))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([
        *s.first()?,
        *s.get(1)?,
        *s.get(2)?,
        *s.get(3)?,
    ]))
}

/// Parses the header of a WAV file held in memory.
pub fn parse_wav_header(bytes: &[u8]) -> Result<WavInfo, WavError> {
    if bytes.get(0..4) != Some(b"RIFF") || bytes.get(8..12) != Some(b"WAVE") {
        return Err(WavError::NotWave);
    }
    let mut at: usize = 12;
    let mut fmt: Option<(u16, u16, u32, u16)> = None;
    let mut data: Option<u32> = None;
    while fmt.is_none() || data.is_none() {
        let Some(id) = bytes.get(at..at.saturating_add(4)) else {
            break;
        };
        let Some(size) = u32_at(bytes, at.saturating_add(4)) else {
            return Err(WavError::Truncated);
        };
        let body = at.saturating_add(8);
        let size_usize = usize::try_from(size).unwrap_or(usize::MAX);
        match id {
            b"fmt " => {
                if size < 16 {
                    return Err(WavError::NoFormat);
                }
                let (Some(mut tag), Some(ch), Some(rate), Some(bits)) = (
                    u16_at(bytes, body),
                    u16_at(bytes, body.saturating_add(2)),
                    u32_at(bytes, body.saturating_add(4)),
                    u16_at(bytes, body.saturating_add(14)),
                ) else {
                    return Err(WavError::Truncated);
                };
                if tag == 0xFFFE {
                    // WAVE_FORMAT_EXTENSIBLE: the sub-format GUID starts
                    // with the real format tag.
                    if size >= 40 {
                        tag = u16_at(bytes, body.saturating_add(24)).ok_or(WavError::Truncated)?;
                    }
                }
                fmt = Some((tag, ch, rate, bits));
            }
            b"data" => {
                let available = bytes.len().saturating_sub(body);
                let len = size_usize.min(available);
                data = Some(u32::try_from(len).unwrap_or(u32::MAX));
            }
            _ => {}
        }
        // Chunks are padded to an even length.
        let padded = size_usize.saturating_add(size_usize & 1);
        at = body.saturating_add(padded);
    }
    let (format_tag, channels, sample_rate, bits_per_sample) = fmt.ok_or(WavError::NoFormat)?;
    let data_bytes = data.filter(|&d| d > 0).ok_or(WavError::NoData)?;
    Ok(WavInfo {
        format_tag,
        channels,
        sample_rate,
        bits_per_sample,
        data_bytes,
    })
}

/// Reads and parses the header of a WAV file.
pub fn inspect_wav(path: &Path) -> Result<WavInfo, WavError> {
    let io = |e: std::io::Error| WavError::Io(crate::source::io_message("cannot read file", &e));
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(WavError::Io("not a regular file".into()));
    }
    if meta.len() > MAX_PROMPT_BYTES {
        return Err(WavError::TooLarge(meta.len()));
    }
    let bytes = std::fs::read(path).map_err(io)?;
    parse_wav_header(&bytes)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal WAV file.
    pub(crate) fn wav(rate: u32, channels: u16, bits: u16, samples: usize) -> Vec<u8> {
        let block = channels * bits / 8;
        let data_len = samples * usize::from(block);
        let mut v = Vec::new();
        v.extend_from_slice(b"RIFF");
        v.extend_from_slice(&u32::try_from(36 + data_len).expect("small").to_le_bytes());
        v.extend_from_slice(b"WAVEfmt ");
        v.extend_from_slice(&16u32.to_le_bytes());
        v.extend_from_slice(&1u16.to_le_bytes());
        v.extend_from_slice(&channels.to_le_bytes());
        v.extend_from_slice(&rate.to_le_bytes());
        v.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
        v.extend_from_slice(&block.to_le_bytes());
        v.extend_from_slice(&bits.to_le_bytes());
        v.extend_from_slice(b"LIST");
        v.extend_from_slice(&3u32.to_le_bytes());
        v.extend_from_slice(b"abc\0");
        v.extend_from_slice(b"data");
        v.extend_from_slice(&u32::try_from(data_len).expect("small").to_le_bytes());
        v.resize(v.len() + data_len, 0);
        v
    }

    #[test]
    fn reads_formats() {
        let i = parse_wav_header(&wav(8000, 1, 16, 16000)).expect("valid");
        assert!(i.is_telephony_pcm());
        assert_eq!(i.duration(), std::time::Duration::from_secs(2));
        let i = parse_wav_header(&wav(22050, 2, 16, 10)).expect("valid");
        assert!(!i.is_telephony_pcm());
        assert_eq!(i.describe(), "22050 Hz, 2 channel(s), 16-bit PCM");
        assert_eq!(parse_wav_header(b"hello"), Err(WavError::NotWave));
        assert_eq!(
            parse_wav_header(&wav(8000, 1, 16, 0)),
            Err(WavError::NoData)
        );
        let full = wav(8000, 1, 16, 10);
        assert_eq!(
            parse_wav_header(full.get(..30).expect("long enough")),
            Err(WavError::Truncated)
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
                        cut in 0usize..120, flip in 0usize..120, val in proptest::num::u8::ANY) {
            let _ = parse_wav_header(&bytes);
            let mut w = wav(8000, 1, 16, 20);
            if let Some(b) = w.get_mut(flip) { *b = val; }
            w.truncate(cut.max(1));
            let _ = parse_wav_header(&w);
        }
    }
}
