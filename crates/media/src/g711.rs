//! ITU-T G.711 µ-law (PCMU) and A-law (PCMA) companding.
//!
//! Everything is table driven: decoding is a 256-entry lookup, encoding a
//! lookup indexed by the significant bits of the linear sample (14 bits for
//! µ-law, 13 bits for A-law), transcoding between the two laws a 256-entry
//! lookup. All tables are computed at compile time from the classic reference
//! algorithms (the Sun Microsystems `g711.c` public-domain code, which follows
//! G.711), so nothing here allocates or can panic.
//!
//! PCMU <-> PCMA transcoding is defined as "decode with one law, re-encode
//! with the other", which stays within one quantisation step of G.711's own
//! conversion tables.

/// Encoded value of digital silence in µ-law (PCMU).
pub const ULAW_SILENCE: u8 = 0xFF;
/// Encoded value of (near) digital silence in A-law (PCMA).
pub const ALAW_SILENCE: u8 = 0xD5;

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 8159;
const SEG_UEND: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
const SEG_AEND: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

const fn search(val: i32, table: &[i32; 8]) -> usize {
    let mut i = 0;
    while i < 8 {
        if val <= table[i] {
            return i;
        }
        i += 1;
    }
    8
}

/// Reference µ-law encoder (algorithmic, used to build the tables).
const fn ulaw_encode_ref(sample: i16) -> u8 {
    let mut pcm = (sample as i32) >> 2;
    let mask: i32;
    if pcm < 0 {
        pcm = -pcm;
        mask = 0x7F;
    } else {
        mask = 0xFF;
    }
    if pcm > ULAW_CLIP {
        pcm = ULAW_CLIP;
    }
    pcm += ULAW_BIAS >> 2;
    let seg = search(pcm, &SEG_UEND);
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let uval = ((seg as i32) << 4) | ((pcm >> (seg + 1)) & 0xF);
    (uval ^ mask) as u8
}

/// Reference µ-law decoder.
const fn ulaw_decode_ref(code: u8) -> i16 {
    let u = !code as i32;
    let mut t = ((u & 0x0F) << 3) + ULAW_BIAS;
    t <<= (u & 0x70) >> 4;
    if u & 0x80 != 0 {
        (ULAW_BIAS - t) as i16
    } else {
        (t - ULAW_BIAS) as i16
    }
}

/// Reference A-law encoder.
const fn alaw_encode_ref(sample: i16) -> u8 {
    let mut pcm = (sample as i32) >> 3;
    let mask: i32;
    if pcm >= 0 {
        mask = 0xD5;
    } else {
        mask = 0x55;
        pcm = -pcm - 1;
    }
    let seg = search(pcm, &SEG_AEND);
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let mut aval = (seg as i32) << 4;
    if seg < 2 {
        aval |= (pcm >> 1) & 0xF;
    } else {
        aval |= (pcm >> seg) & 0xF;
    }
    (aval ^ mask) as u8
}

/// Reference A-law decoder.
const fn alaw_decode_ref(code: u8) -> i16 {
    let a = (code ^ 0x55) as i32;
    let mut t = (a & 0x0F) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    if a & 0x80 != 0 {
        t as i16
    } else {
        -t as i16
    }
}

static ULAW_DECODE: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = ulaw_decode_ref(i as u8);
        i += 1;
    }
    t
};

static ALAW_DECODE: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = alaw_decode_ref(i as u8);
        i += 1;
    }
    t
};

/// µ-law encoding table indexed by `(sample >> 2) + 8192` (14 significant bits).
static ULAW_ENCODE: [u8; 16384] = {
    let mut t = [0u8; 16384];
    let mut i = 0;
    while i < 16384 {
        let sample = ((i as i32 - 8192) << 2) as i16;
        t[i] = ulaw_encode_ref(sample);
        i += 1;
    }
    t
};

/// A-law encoding table indexed by `(sample >> 3) + 4096` (13 significant bits).
static ALAW_ENCODE: [u8; 8192] = {
    let mut t = [0u8; 8192];
    let mut i = 0;
    while i < 8192 {
        let sample = ((i as i32 - 4096) << 3) as i16;
        t[i] = alaw_encode_ref(sample);
        i += 1;
    }
    t
};

static ULAW_TO_ALAW: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = alaw_encode_ref(ulaw_decode_ref(i as u8));
        i += 1;
    }
    t
};

static ALAW_TO_ULAW: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = ulaw_encode_ref(alaw_decode_ref(i as u8));
        i += 1;
    }
    t
};

/// Encodes one 16-bit linear sample to µ-law.
#[inline]
pub fn ulaw_encode(sample: i16) -> u8 {
    // (sample >> 2) is in -8192..=8191, so the index is always in 0..16384.
    ULAW_ENCODE[(((sample as i32) >> 2) + 8192) as usize & 0x3FFF]
}

/// Decodes one µ-law byte to a 16-bit linear sample.
#[inline]
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_DECODE[code as usize]
}

/// Encodes one 16-bit linear sample to A-law.
#[inline]
pub fn alaw_encode(sample: i16) -> u8 {
    // (sample >> 3) is in -4096..=4095, so the index is always in 0..8192.
    ALAW_ENCODE[(((sample as i32) >> 3) + 4096) as usize & 0x1FFF]
}

/// Decodes one A-law byte to a 16-bit linear sample.
#[inline]
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_DECODE[code as usize]
}

/// Converts one µ-law byte to the A-law byte of the same decoded value.
#[inline]
pub fn ulaw_to_alaw(code: u8) -> u8 {
    ULAW_TO_ALAW[code as usize]
}

/// Converts one A-law byte to the µ-law byte of the same decoded value.
#[inline]
pub fn alaw_to_ulaw(code: u8) -> u8 {
    ALAW_TO_ULAW[code as usize]
}

/// A G.711 law; the two audio codecs the switch speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, static RTP payload type 0.
    Pcmu,
    /// G.711 A-law, static RTP payload type 8.
    Pcma,
}

impl Codec {
    /// The static RTP payload type of this codec (0 for PCMU, 8 for PCMA).
    pub fn static_payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The SDP `a=rtpmap` encoding name (`PCMU` or `PCMA`).
    pub fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// The encoded byte for silence in this law.
    pub fn silence(self) -> u8 {
        match self {
            Codec::Pcmu => ULAW_SILENCE,
            Codec::Pcma => ALAW_SILENCE,
        }
    }

    /// Decodes one byte of this law.
    #[inline]
    pub fn decode(self, code: u8) -> i16 {
        match self {
            Codec::Pcmu => ulaw_decode(code),
            Codec::Pcma => alaw_decode(code),
        }
    }

    /// Encodes one linear sample with this law.
    #[inline]
    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Codec::Pcmu => ulaw_encode(sample),
            Codec::Pcma => alaw_encode(sample),
        }
    }
}

/// Encodes `pcm` into `out` with `codec`; returns the number of bytes written
/// (the shorter of the two lengths).
pub fn encode_into(codec: Codec, pcm: &[i16], out: &mut [u8]) -> usize {
    let n = pcm.len().min(out.len());
    for (o, &s) in out.iter_mut().zip(pcm.iter()) {
        *o = codec.encode(s);
    }
    n
}

/// Decodes `encoded` into `out` with `codec`; returns the number of samples
/// written (the shorter of the two lengths).
pub fn decode_into(codec: Codec, encoded: &[u8], out: &mut [i16]) -> usize {
    let n = encoded.len().min(out.len());
    for (o, &c) in out.iter_mut().zip(encoded.iter()) {
        *o = codec.decode(c);
    }
    n
}

/// Transcodes a G.711 payload in place from `from` to `to` (no-op when equal).
pub fn transcode_in_place(from: Codec, to: Codec, payload: &mut [u8]) {
    match (from, to) {
        (Codec::Pcmu, Codec::Pcma) => payload.iter_mut().for_each(|b| *b = ulaw_to_alaw(*b)),
        (Codec::Pcma, Codec::Pcmu) => payload.iter_mut().for_each(|b| *b = alaw_to_ulaw(*b)),
        _ => {}
    }
}

/// Transcodes `input` (law `from`) into `out` (law `to`), copying when the
/// laws are equal; returns the number of bytes written (the shorter length).
pub fn transcode_into(from: Codec, to: Codec, input: &[u8], out: &mut [u8]) -> usize {
    let n = input.len().min(out.len());
    let (src, dst) = (&input[..n], &mut out[..n]);
    match (from, to) {
        (Codec::Pcmu, Codec::Pcma) => {
            for (o, &i) in dst.iter_mut().zip(src) {
                *o = ulaw_to_alaw(i);
            }
        }
        (Codec::Pcma, Codec::Pcmu) => {
            for (o, &i) in dst.iter_mut().zip(src) {
                *o = alaw_to_ulaw(i);
            }
        }
        _ => dst.copy_from_slice(src),
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_reference_values() {
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        // Segment boundaries from the G.711 µ-law table (decoder outputs).
        assert_eq!(ulaw_decode(0xEF), 132);
        assert_eq!(ulaw_decode(0xFE), 8);
        assert_eq!(ulaw_decode(0x8F), 16764);
        assert_eq!(ulaw_decode(0x81), 31100);
        assert_eq!(ulaw_encode(1000), 0xCE);
        assert_eq!(ulaw_encode(-1000), 0x4E);
    }

    #[test]
    fn alaw_reference_values() {
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
        assert_eq!(alaw_encode(1000), 0xFA);
        assert_eq!(alaw_encode(-1000), 0x7A);
    }

    #[test]
    fn tables_match_reference_for_every_sample() {
        for s in i16::MIN..=i16::MAX {
            assert_eq!(ulaw_encode(s), ulaw_encode_ref(s), "ulaw {s}");
            assert_eq!(alaw_encode(s), alaw_encode_ref(s), "alaw {s}");
        }
    }

    #[test]
    fn decode_encode_round_trip_is_identity_on_codes() {
        for c in 0..=255u8 {
            // µ-law has two zero codes (0x7F and 0xFF); 0 encodes to 0xFF.
            let expected = if c == 0x7F { 0xFF } else { c };
            assert_eq!(ulaw_encode(ulaw_decode(c)), expected, "ulaw {c:#x}");
            assert_eq!(alaw_encode(alaw_decode(c)), c, "alaw {c:#x}");
        }
    }

    #[test]
    fn quantisation_error_is_bounded() {
        for s in (i16::MIN..=i16::MAX).step_by(7) {
            let u = ulaw_decode(ulaw_encode(s)) as i32;
            let a = alaw_decode(alaw_encode(s)) as i32;
            let s = s as i32;
            // Step size grows with magnitude: at most 1/16 of the value plus the
            // smallest step, and both laws clip near full scale.
            let tol = s.abs() / 16 + 16;
            let su = s.clamp(-32124, 32124);
            let sa = s.clamp(-32256, 32256);
            assert!((u - su).abs() <= tol, "ulaw {s} -> {u}");
            assert!((a - sa).abs() <= tol, "alaw {s} -> {a}");
        }
    }

    #[test]
    fn transcoding_preserves_decoded_value_within_quantisation() {
        for c in 0..=255u8 {
            let lin = ulaw_decode(c) as i32;
            let via = alaw_decode(ulaw_to_alaw(c)) as i32;
            assert!((lin - via).abs() <= lin.abs() / 16 + 16, "u {c:#x}");
            let lin = alaw_decode(c) as i32;
            let via = ulaw_decode(alaw_to_ulaw(c)) as i32;
            assert!((lin - via).abs() <= lin.abs() / 16 + 16, "a {c:#x}");
        }
        let mut buf = [0u8, 0x80, 0xFF, 0x7F, 0x10];
        let orig = buf;
        transcode_in_place(Codec::Pcmu, Codec::Pcma, &mut buf);
        let mut out = [0u8; 5];
        assert_eq!(transcode_into(Codec::Pcmu, Codec::Pcma, &orig, &mut out), 5);
        assert_eq!(buf, out);
        let mut short = [0u8; 2];
        assert_eq!(
            transcode_into(Codec::Pcma, Codec::Pcma, &orig, &mut short),
            2
        );
        assert_eq!(short, [0, 0x80]);
    }

    #[test]
    fn encode_decode_helpers() {
        let pcm = [0i16, 1000, -1000, 32767];
        let mut enc = [0u8; 4];
        assert_eq!(encode_into(Codec::Pcmu, &pcm, &mut enc), 4);
        assert_eq!(enc, [0xFF, 0xCE, 0x4E, 0x80]);
        let mut dec = [0i16; 8];
        assert_eq!(decode_into(Codec::Pcmu, &enc, &mut dec), 4);
        assert_eq!(dec[0], 0);
        assert_eq!(Codec::Pcma.silence(), 0xD5);
        assert_eq!(Codec::Pcmu.static_payload_type(), 0);
        assert_eq!(Codec::Pcma.static_payload_type(), 8);
    }
}
