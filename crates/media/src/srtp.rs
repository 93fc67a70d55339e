//! SRTP (RFC 3711) for RTP legs keyed with SDES (RFC 4568): the
//! `AES_CM_128_HMAC_SHA1_80` and `AES_CM_128_HMAC_SHA1_32` suites, master
//! key derivation rate 0, no MKI, RTP only (we send no RTCP; SRTCP is not
//! implemented and incoming RTCP is dropped by the leg).
//!
//! * [`MasterKey`]: 16-byte master key and 14-byte master salt, as carried
//!   base64-encoded in `a=crypto:... inline:`. Its `Debug` never shows the
//!   bytes, so keys cannot end up in logs through `{:?}`.
//! * [`SrtpSender`]: protects one outgoing stream in place (AES-CM
//!   encryption of the payload, HMAC-SHA1 tag over the packet and the
//!   rollover counter appended).
//! * [`SrtpReceiver`]: authenticates first (constant-time tag comparison),
//!   then checks the replay window and decrypts in place.
//!
//! Both work in the caller's buffer with keystream and MAC state on the
//! stack: no allocation per packet. Built on the RustCrypto primitives
//! `aes` (AES-128, hardware-accelerated when the CPU has AES-NI) and
//! `hmac` + `sha1`. The counter mode is written here: SRTP's counter is the
//! 16 low bits of a per-packet IV, and generating the keystream blocks from
//! the session's expanded key avoids cloning a key schedule per packet.

use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes::Aes128;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// Length of an SRTP master key (AES-128).
pub const MASTER_KEY_LEN: usize = 16;
/// Length of an SRTP master salt.
pub const MASTER_SALT_LEN: usize = 14;
/// Length of the `inline:` key material: master key then master salt.
pub const INLINE_LEN: usize = MASTER_KEY_LEN + MASTER_SALT_LEN;
/// Longest authentication tag of the suites we support (bytes).
pub const MAX_TAG_LEN: usize = 10;

/// Session key labels of RFC 3711 §4.3.1 (SRTP ones).
const LABEL_ENCRYPTION: u8 = 0x00;
const LABEL_AUTH: u8 = 0x01;
const LABEL_SALT: u8 = 0x02;
/// Session authentication key length (HMAC-SHA1, RFC 3711 §8.2).
const AUTH_KEY_LEN: usize = 20;
/// Keystream blocks generated per AES call (lets AES-NI pipeline them).
const PAR_BLOCKS: usize = 8;
/// Replay window: packets this far behind the highest index are checked
/// against a bitmap (RFC 3711 §3.3.2 asks for at least 64).
const REPLAY_WINDOW: u64 = 64;

/// A crypto suite of RFC 4568 §6.2 we implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Suite {
    /// AES-128 counter mode, HMAC-SHA1 tag of 80 bits (the default of
    /// RFC 3711 and what softphones offer first).
    AesCm128HmacSha1_80,
    /// AES-128 counter mode, HMAC-SHA1 tag of 32 bits.
    AesCm128HmacSha1_32,
}

impl Suite {
    /// Every suite we support, preferred first.
    pub const ALL: [Suite; 2] = [Suite::AesCm128HmacSha1_80, Suite::AesCm128HmacSha1_32];

    /// The name written in `a=crypto` lines.
    pub fn name(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    /// The suite named `s` (case-sensitive, as RFC 4568 registers them),
    /// if we support it.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.name() == s)
    }

    /// Length of the authentication tag appended to each packet.
    pub fn tag_len(self) -> usize {
        match self {
            Suite::AesCm128HmacSha1_80 => 10,
            Suite::AesCm128HmacSha1_32 => 4,
        }
    }
}

impl std::fmt::Display for Suite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An SRTP master key and master salt (30 bytes). `Debug` is redacted.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MasterKey {
    bytes: [u8; INLINE_LEN],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// A fresh key from the thread's cryptographically secure generator
    /// (ChaCha, seeded and periodically reseeded from the OS).
    pub fn random() -> Self {
        use rand::RngCore as _;
        let mut bytes = [0u8; INLINE_LEN];
        rand::rng().fill_bytes(&mut bytes);
        MasterKey { bytes }
    }

    /// The key from its 30 bytes (master key then master salt).
    pub const fn from_bytes(bytes: [u8; INLINE_LEN]) -> Self {
        MasterKey { bytes }
    }

    /// The key from a 16-byte master key and a 14-byte master salt.
    pub fn from_parts(key: &[u8; MASTER_KEY_LEN], salt: &[u8; MASTER_SALT_LEN]) -> Self {
        let mut bytes = [0u8; INLINE_LEN];
        bytes[..MASTER_KEY_LEN].copy_from_slice(key);
        bytes[MASTER_KEY_LEN..].copy_from_slice(salt);
        MasterKey { bytes }
    }

    /// Decodes the base64 `inline:` key material (padding optional); `None`
    /// unless it is exactly 30 bytes.
    pub fn from_inline(text: &str) -> Option<Self> {
        use base64::Engine as _;
        let mut buf = [0u8; INLINE_LEN + 3];
        let n = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode_slice(text.trim_end_matches('='), &mut buf)
            .ok()?;
        let bytes: [u8; INLINE_LEN] = buf.get(..n)?.try_into().ok()?;
        Some(MasterKey { bytes })
    }

    /// The base64 `inline:` form (40 characters, no padding needed).
    pub fn to_inline(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(self.bytes)
    }

    fn key(&self) -> [u8; MASTER_KEY_LEN] {
        let mut k = [0u8; MASTER_KEY_LEN];
        k.copy_from_slice(&self.bytes[..MASTER_KEY_LEN]);
        k
    }

    fn salt(&self) -> [u8; MASTER_SALT_LEN] {
        let mut s = [0u8; MASTER_SALT_LEN];
        s.copy_from_slice(&self.bytes[MASTER_KEY_LEN..]);
        s
    }
}

/// A crypto suite and the master key used with it: one direction of an
/// SRTP session (what one `a=crypto` line carries, less its tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuiteKey {
    /// The suite.
    pub suite: Suite,
    /// The master key and salt.
    pub key: MasterKey,
}

/// Why an SRTP packet was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SrtpError {
    /// Not an RTP packet, or too short to hold its header and tag.
    #[error("not an SRTP packet")]
    Malformed,
    /// The authentication tag does not match (forged, corrupted, or
    /// another key).
    #[error("SRTP authentication failed")]
    Auth,
    /// Already received, or too old for the replay window.
    #[error("SRTP packet replayed or too old")]
    Replay,
    /// The output buffer has no room for the tag.
    #[error("no room for the SRTP tag")]
    NoRoom,
}

/// The session keys of one direction (RFC 3711 §4.3, key derivation rate
/// 0: derived once from the master key).
#[derive(Clone)]
struct SessionKeys {
    cipher: Aes128,
    salt: [u8; MASTER_SALT_LEN],
    /// HMAC-SHA1 keyed with the session authentication key (inner and
    /// outer states precomputed; cloned per packet).
    mac: Hmac<Sha1>,
    tag_len: usize,
}

impl SessionKeys {
    fn derive(sk: &SuiteKey) -> Self {
        let prf = Aes128::new(&sk.key.key().into());
        let master_salt = sk.key.salt();
        let mut enc = [0u8; MASTER_KEY_LEN];
        derive_key(&prf, &master_salt, LABEL_ENCRYPTION, &mut enc);
        let mut auth = [0u8; AUTH_KEY_LEN];
        derive_key(&prf, &master_salt, LABEL_AUTH, &mut auth);
        let mut salt = [0u8; MASTER_SALT_LEN];
        derive_key(&prf, &master_salt, LABEL_SALT, &mut salt);
        // HMAC pads a key shorter than the hash's block with zeros: the
        // padded key is the same key, and this constructor cannot fail.
        let mut block_key = [0u8; 64];
        block_key[..AUTH_KEY_LEN].copy_from_slice(&auth);
        let mac = <Hmac<Sha1> as KeyInit>::new(&block_key.into());
        block_key.fill(0);
        let keys = SessionKeys {
            cipher: Aes128::new(&enc.into()),
            salt,
            mac,
            tag_len: sk.suite.tag_len(),
        };
        enc.fill(0);
        auth.fill(0);
        keys
    }

    /// RFC 3711 §4.1.1: IV = (k_s * 2^16) XOR (SSRC * 2^64) XOR (i * 2^16).
    fn packet_iv(&self, ssrc: u32, index: u64) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv[..MASTER_SALT_LEN].copy_from_slice(&self.salt);
        for (b, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
            *b ^= s;
        }
        // The 48-bit index sits in bytes 8..14.
        for (b, s) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
            *b ^= s;
        }
        iv
    }

    /// The authentication tag of `authenticated || ROC`.
    fn tag(&self, authenticated: &[u8], roc: u32) -> Hmac<Sha1> {
        let mut mac = self.mac.clone();
        mac.update(authenticated);
        mac.update(&roc.to_be_bytes());
        mac
    }
}

/// RFC 3711 §4.3.1 with key derivation rate 0: `x = label * 2^48 XOR
/// master_salt`, the session key is the AES-CM keystream of IV `x * 2^16`
/// under the master key.
fn derive_key(prf: &Aes128, master_salt: &[u8; MASTER_SALT_LEN], label: u8, out: &mut [u8]) {
    let mut iv = [0u8; 16];
    iv[..MASTER_SALT_LEN].copy_from_slice(master_salt);
    iv[7] ^= label;
    out.fill(0);
    apply_keystream(prf, &iv, out);
}

/// XORs the AES-CM keystream (RFC 3711 §4.1.1) of `iv` into `data`: block
/// `j` is AES(IV + j), `j` in the 16 low bits (IV's are zero; a packet is
/// far shorter than 2^16 blocks).
fn apply_keystream(cipher: &Aes128, iv: &[u8; 16], data: &mut [u8]) {
    let mut counter: u16 = 0;
    for chunk in data.chunks_mut(16 * PAR_BLOCKS) {
        let n = chunk.len().div_ceil(16);
        let mut blocks = [aes::Block::default(); PAR_BLOCKS];
        let blocks = &mut blocks[..n];
        for b in blocks.iter_mut() {
            b.copy_from_slice(iv);
            b[14..].copy_from_slice(&counter.to_be_bytes());
            counter = counter.wrapping_add(1);
        }
        cipher.encrypt_blocks(blocks);
        for (d, k) in chunk.iter_mut().zip(blocks.iter().flat_map(|b| b.iter())) {
            *d ^= *k;
        }
    }
}

/// Length of the RTP header (fixed part, CSRCs, header extension) of a
/// version 2 packet, if the packet holds it.
fn header_len(pkt: &[u8]) -> Option<usize> {
    let b0 = *pkt.first()?;
    if b0 >> 6 != 2 || pkt.len() < 12 {
        return None;
    }
    let mut len = 12 + 4 * usize::from(b0 & 0x0F);
    if b0 & 0x10 != 0 {
        let ext = pkt.get(len + 2..len + 4)?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    (len <= pkt.len()).then_some(len)
}

fn seq_ssrc(pkt: &[u8]) -> Option<(u16, u32)> {
    let seq = pkt.get(2..4)?;
    let ssrc = pkt.get(8..12)?;
    Some((
        u16::from_be_bytes([seq[0], seq[1]]),
        u32::from_be_bytes([ssrc[0], ssrc[1], ssrc[2], ssrc[3]]),
    ))
}

/// Packet index state of one stream (RFC 3711 §3.3.1): rollover counter
/// and highest sequence number, with the index estimate of Appendix A.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IndexState {
    ssrc: u32,
    roc: u32,
    /// Highest sequence number seen with `roc` (s_l).
    s_l: u16,
}

impl IndexState {
    fn new(ssrc: u32, seq: u16) -> Self {
        IndexState {
            ssrc,
            roc: 0,
            s_l: seq,
        }
    }

    /// The estimated ROC for `seq` (`v` of RFC 3711 §3.3.1), `None` if it
    /// falls before the stream's start or past 2^32 rollovers.
    fn estimate(&self, seq: u16) -> Option<u32> {
        let (roc, s_l, seq) = (i64::from(self.roc), i32::from(self.s_l), i32::from(seq));
        let v = if s_l < 32768 {
            if seq - s_l > 32768 {
                roc - 1
            } else {
                roc
            }
        } else if s_l - 32768 > seq {
            roc + 1
        } else {
            roc
        };
        u32::try_from(v).ok()
    }

    fn highest(&self) -> u64 {
        (u64::from(self.roc) << 16) | u64::from(self.s_l)
    }

    /// Accounts a packet of ROC `v` and sequence `seq`.
    fn update(&mut self, v: u32, seq: u16) {
        if v > self.roc {
            self.roc = v;
            self.s_l = seq;
        } else if v == self.roc && seq > self.s_l {
            self.s_l = seq;
        }
    }
}

fn index_of(roc: u32, seq: u16) -> u64 {
    (u64::from(roc) << 16) | u64::from(seq)
}

/// Protects one outgoing RTP stream (a leg's sending side).
#[derive(Clone)]
pub struct SrtpSender {
    keys: SessionKeys,
    key: SuiteKey,
    state: Option<IndexState>,
}

impl std::fmt::Debug for SrtpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpSender")
            .field("suite", &self.key.suite)
            .field("state", &self.state)
            .finish()
    }
}

impl SrtpSender {
    /// A sender with `key` (our master key, as announced in our SDP).
    pub fn new(key: SuiteKey) -> Self {
        SrtpSender {
            keys: SessionKeys::derive(&key),
            key,
            state: None,
        }
    }

    /// The suite and master key in use.
    pub fn suite_key(&self) -> &SuiteKey {
        &self.key
    }

    /// Extra bytes a protected packet takes (the tag).
    pub fn overhead(&self) -> usize {
        self.keys.tag_len
    }

    /// Encrypts and authenticates the RTP packet `buf[..len]` in place and
    /// appends its tag; returns the SRTP packet's length. `buf` must have
    /// room for the tag after the packet.
    pub fn protect(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let pkt = buf.get(..len).ok_or(SrtpError::Malformed)?;
        let hlen = header_len(pkt).ok_or(SrtpError::Malformed)?;
        let (seq, ssrc) = seq_ssrc(pkt).ok_or(SrtpError::Malformed)?;
        let out_len = len + self.keys.tag_len;
        if buf.len() < out_len {
            return Err(SrtpError::NoRoom);
        }
        let state = match self.state {
            Some(s) if s.ssrc == ssrc => s,
            _ => IndexState::new(ssrc, seq),
        };
        // Relayed packets keep the incoming order: a late one gets the
        // index the receiver will estimate for it.
        let roc = state.estimate(seq).ok_or(SrtpError::Replay)?;
        let iv = self.keys.packet_iv(ssrc, index_of(roc, seq));
        let (head, rest) = buf.split_at_mut(hlen);
        let (payload, trailer) = rest.split_at_mut(len - hlen);
        apply_keystream(&self.keys.cipher, &iv, payload);
        let mut mac = self.keys.mac.clone();
        mac.update(head);
        mac.update(payload);
        mac.update(&roc.to_be_bytes());
        let tag = mac.finalize().into_bytes();
        let tag_len = self.keys.tag_len;
        trailer
            .get_mut(..tag_len)
            .ok_or(SrtpError::NoRoom)?
            .copy_from_slice(tag.get(..tag_len).ok_or(SrtpError::NoRoom)?);
        let mut state = state;
        state.update(roc, seq);
        self.state = Some(state);
        Ok(out_len)
    }
}

/// Authenticates and decrypts one incoming SRTP stream (a leg's receiving
/// side), with a 64-packet replay window. Keeps the state of one SSRC: a
/// new SSRC starts a new stream once one of its packets authenticates.
#[derive(Clone)]
pub struct SrtpReceiver {
    keys: SessionKeys,
    key: SuiteKey,
    state: Option<IndexState>,
    /// Bit `k` set: index `highest - k` was received.
    window: u64,
}

impl std::fmt::Debug for SrtpReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpReceiver")
            .field("suite", &self.key.suite)
            .field("state", &self.state)
            .finish()
    }
}

impl SrtpReceiver {
    /// A receiver for the remote's `key` (from its SDP).
    pub fn new(key: SuiteKey) -> Self {
        SrtpReceiver {
            keys: SessionKeys::derive(&key),
            key,
            state: None,
            window: 0,
        }
    }

    /// The suite and master key in use.
    pub fn suite_key(&self) -> &SuiteKey {
        &self.key
    }

    /// Checks the tag of the SRTP packet in `buf`, refuses replays, and
    /// decrypts it in place; returns the length of the RTP packet now at
    /// the start of `buf`. Nothing is learnt from a refused packet.
    pub fn unprotect(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let tag_len = self.keys.tag_len;
        let len = buf.len().checked_sub(tag_len).ok_or(SrtpError::Malformed)?;
        let (pkt, tag) = buf.split_at_mut(len);
        let hlen = header_len(pkt).ok_or(SrtpError::Malformed)?;
        let (seq, ssrc) = seq_ssrc(pkt).ok_or(SrtpError::Malformed)?;
        let (state, window) = match self.state {
            Some(s) if s.ssrc == ssrc => (s, self.window),
            _ => (IndexState::new(ssrc, seq), 0),
        };
        let roc = state.estimate(seq).ok_or(SrtpError::Replay)?;
        let index = index_of(roc, seq);
        let highest = state.highest();
        let fresh = self.state.is_none_or(|s| s.ssrc != ssrc);
        if !fresh && index <= highest {
            let behind = highest - index;
            if behind >= REPLAY_WINDOW || window & (1u64 << behind) != 0 {
                return Err(SrtpError::Replay);
            }
        }
        self.keys
            .tag(pkt, roc)
            .verify_truncated_left(tag)
            .map_err(|_| SrtpError::Auth)?;
        let iv = self.keys.packet_iv(ssrc, index);
        apply_keystream(
            &self.keys.cipher,
            &iv,
            pkt.get_mut(hlen..).unwrap_or(&mut []),
        );
        // Authentic: account it.
        let window = if fresh {
            1
        } else if index > highest {
            let ahead = index - highest;
            if ahead >= REPLAY_WINDOW {
                1
            } else {
                (window << ahead) | 1
            }
        } else {
            window | (1u64 << (highest - index))
        };
        let mut state = state;
        state.update(roc, seq);
        self.state = Some(state);
        self.window = window;
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 3711 Appendix B.2: AES-CM keystream.
    #[test]
    fn rfc3711_b2_keystream() {
        let key: [u8; 16] = hex("2B7E151628AED2A6ABF7158809CF4F3C").try_into().unwrap();
        let cipher = Aes128::new(&key.into());
        // IV = session salt F0F1...FD * 2^16 (SSRC and index zero).
        let iv: [u8; 16] = hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000").try_into().unwrap();
        let mut ks = [0u8; 48];
        apply_keystream(&cipher, &iv, &mut ks);
        assert_eq!(
            ks.to_vec(),
            hex(
                "E03EAD0935C95E80E166B16DD92B4EB4 D23513162B02D0F72A43A2FE4A5F97AB \
                 41E95B3BB0A2E8DD477901E4FCA894C0"
            )
        );
        // Block 0xFEFF and 0xFF00 of the same keystream (the RFC's last
        // lines): counter in the 16 low bits.
        let mut long = vec![0u8; 16 * 0xFF01];
        apply_keystream(&cipher, &iv, &mut long);
        assert_eq!(
            long[16 * 0xFEFF..].to_vec(),
            hex("EC8CDF7398607CB0F2D21675EA9EA1E4 362B7C3C6773516318A077D7FC5073AE")
        );
    }

    /// RFC 3711 Appendix B.3: key derivation.
    #[test]
    fn rfc3711_b3_key_derivation() {
        let master_key: [u8; 16] = hex("E1F97A0D3E018BE0D64FA32C06DE4139").try_into().unwrap();
        let master_salt: [u8; 14] = hex("0EC675AD498AFEEBB6960B3AABE6").try_into().unwrap();
        let prf = Aes128::new(&master_key.into());
        let mut enc = [0u8; 16];
        derive_key(&prf, &master_salt, LABEL_ENCRYPTION, &mut enc);
        assert_eq!(enc.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
        let mut salt = [0u8; 14];
        derive_key(&prf, &master_salt, LABEL_SALT, &mut salt);
        assert_eq!(salt.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
        let mut auth = [0u8; 94];
        derive_key(&prf, &master_salt, LABEL_AUTH, &mut auth);
        assert_eq!(
            auth.to_vec(),
            hex(
                "CEBE321F6FF7716B6FD4AB49AF256A15 6D38BAA48F0A0ACF3C34E2359E6CDBCE \
                 E049646C43D9327AD175578EF7227098 6371C10C9A369AC2F94A8C5FBCDDDC25 \
                 6D6E919A48B610EF17C2041E47403576 6B68642C59BBFC2F34DB60DBDFB2"
            )
        );
    }

    fn key(seed: u8) -> SuiteKey {
        SuiteKey {
            suite: Suite::AesCm128HmacSha1_80,
            key: MasterKey::from_bytes(std::array::from_fn(|i| seed.wrapping_add(i as u8))),
        }
    }

    fn packet(seq: u16, ssrc: u32, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, 0];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    fn protect(tx: &mut SrtpSender, plain: &[u8]) -> Vec<u8> {
        let mut buf = plain.to_vec();
        buf.resize(plain.len() + MAX_TAG_LEN, 0);
        let n = tx.protect(&mut buf, plain.len()).unwrap();
        buf.truncate(n);
        buf
    }

    /// A packet from libsrtp's test vectors (srtp_driver.c, the
    /// AES_CM_128_HMAC_SHA1_80 reference packet): checks our output
    /// byte for byte against another implementation.
    #[test]
    fn libsrtp_reference_packet() {
        let key = SuiteKey {
            suite: Suite::AesCm128HmacSha1_80,
            key: MasterKey::from_bytes(
                hex("e1f97a0d3e018be0d64fa32c06de41390ec675ad498afeebb6960b3aabe6")
                    .try_into()
                    .unwrap(),
            ),
        };
        let plain = hex("800f1234decafbadcafebabeabababababababababababababababab");
        let mut tx = SrtpSender::new(key);
        let srtp = protect(&mut tx, &plain);
        assert_eq!(
            srtp,
            hex("800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc99ea179b8dbb")
        );
        let mut rx = SrtpReceiver::new(key);
        let mut buf = srtp.clone();
        let n = rx.unprotect(&mut buf).unwrap();
        assert_eq!(&buf[..n], &plain[..]);
        // The 32-bit tag is the same HMAC truncated.
        let key32 = SuiteKey {
            suite: Suite::AesCm128HmacSha1_32,
            ..key
        };
        let srtp32 = protect(&mut SrtpSender::new(key32), &plain);
        assert_eq!(srtp32, srtp[..32].to_vec());
        let mut buf = srtp32.clone();
        let n = SrtpReceiver::new(key32).unprotect(&mut buf).unwrap();
        assert_eq!(&buf[..n], &plain[..]);
    }

    #[test]
    fn round_trip_both_suites_with_csrc_and_extension() {
        for suite in Suite::ALL {
            let k = SuiteKey { suite, ..key(7) };
            let mut tx = SrtpSender::new(k);
            let mut rx = SrtpReceiver::new(k);
            // CC=1, X=1 with a one-word extension: header of 12+4+8 bytes.
            let mut plain = vec![0x91, 0x00, 0x00, 0x05, 0, 0, 0, 0, 0, 0, 0, 9];
            plain.extend_from_slice(&[1, 2, 3, 4]); // CSRC
            plain.extend_from_slice(&[0xBE, 0xDE, 0, 1, 9, 9, 9, 9]); // extension
            plain.extend_from_slice(&[0x55; 160]);
            let srtp = protect(&mut tx, &plain);
            assert_eq!(srtp.len(), plain.len() + suite.tag_len());
            assert_eq!(srtp[..24], plain[..24], "header in clear");
            assert_ne!(srtp[24..184], plain[24..], "payload encrypted");
            let mut buf = srtp.clone();
            let n = rx.unprotect(&mut buf).unwrap();
            assert_eq!(&buf[..n], &plain[..]);
        }
    }

    #[test]
    fn replay_refused_and_window_accepts_reordering() {
        let mut tx = SrtpSender::new(key(1));
        let mut rx = SrtpReceiver::new(key(1));
        let pkts: Vec<Vec<u8>> = (100u16..110)
            .map(|s| protect(&mut tx, &packet(s, 42, &[s as u8; 20])))
            .collect();
        let mut recv = |p: &Vec<u8>| rx.unprotect(&mut p.clone());
        assert!(recv(&pkts[0]).is_ok());
        assert_eq!(recv(&pkts[0]), Err(SrtpError::Replay));
        assert!(recv(&pkts[5]).is_ok());
        assert!(recv(&pkts[3]).is_ok(), "late packet inside the window");
        assert_eq!(recv(&pkts[3]), Err(SrtpError::Replay));
        assert_eq!(recv(&pkts[5]), Err(SrtpError::Replay));
        assert!(recv(&pkts[9]).is_ok());
        // Far behind the window.
        let mut tx2 = SrtpSender::new(key(1));
        let old = protect(&mut tx2, &packet(1000, 43, &[1; 20]));
        let newer = protect(&mut tx2, &packet(1100, 43, &[1; 20]));
        assert!(recv(&old).is_ok(), "new SSRC starts a new stream");
        assert!(recv(&newer).is_ok());
        assert_eq!(recv(&old), Err(SrtpError::Replay));
    }

    #[test]
    fn tampered_or_foreign_packets_refused_and_teach_nothing() {
        let mut tx = SrtpSender::new(key(1));
        let mut rx = SrtpReceiver::new(key(1));
        let good = protect(&mut tx, &packet(5, 42, &[9; 160]));
        for i in [1usize, 3, 9, 20, good.len() - 1] {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            assert_eq!(rx.unprotect(&mut bad), Err(SrtpError::Auth), "byte {i}");
        }
        // Another key.
        let mut other = SrtpSender::new(key(2));
        let forged = protect(&mut other, &packet(6, 42, &[9; 160]));
        assert_eq!(rx.unprotect(&mut forged.clone()), Err(SrtpError::Auth));
        // Plain RTP.
        assert_eq!(
            rx.unprotect(&mut packet(7, 42, &[0; 160])),
            Err(SrtpError::Auth)
        );
        for short in [&[][..], &[0x80; 5][..], &[0x80; 21][..], &[0x00; 40][..]] {
            assert_eq!(
                rx.unprotect(&mut short.to_vec()),
                Err(SrtpError::Malformed),
                "{short:?}"
            );
        }
        assert_eq!(rx.state, None, "nothing learnt");
        assert!(rx.unprotect(&mut good.clone()).is_ok());
    }

    #[test]
    fn rollover_counter_follows_sequence_wrap() {
        let mut tx = SrtpSender::new(key(3));
        let mut rx = SrtpReceiver::new(key(3));
        let mut seq: u16 = 65_000;
        // 70,000 packets from 65,000: the sequence number wraps twice; the
        // packet before the first wrap arrives late, after it.
        let mut held: Option<Vec<u8>> = None;
        for n in 0..70_000u32 {
            let p = protect(&mut tx, &packet(seq, 7, &n.to_be_bytes()));
            if seq == 65_535 {
                held = Some(p);
            } else {
                let mut b = p.clone();
                let len = rx
                    .unprotect(&mut b)
                    .unwrap_or_else(|e| panic!("seq {seq}: {e}"));
                assert_eq!(&b[12..len], &n.to_be_bytes());
                if seq == 1 && held.is_some() {
                    let mut late = held.take().unwrap();
                    assert!(rx.unprotect(&mut late).is_ok());
                }
            }
            seq = seq.wrapping_add(1);
        }
        assert_eq!(rx.state.unwrap().roc, 2);
        assert_eq!(tx.state.unwrap().roc, 2);
        // A receiver that knows nothing decrypts ROC-1 packets only with
        // the right ROC: the tag covers it.
        let mut fresh = SrtpReceiver::new(key(3));
        let p = protect(&mut tx, &packet(seq, 7, &[1]));
        assert_eq!(fresh.unprotect(&mut p.clone()), Err(SrtpError::Auth));
    }

    #[test]
    fn protect_needs_room_and_a_header() {
        let mut tx = SrtpSender::new(key(1));
        let p = packet(1, 1, &[0; 10]);
        let mut exact = p.clone();
        assert_eq!(tx.protect(&mut exact, p.len()), Err(SrtpError::NoRoom));
        let mut junk = vec![0u8; 40];
        assert_eq!(tx.protect(&mut junk, 30), Err(SrtpError::Malformed));
        assert_eq!(tx.protect(&mut junk, 50), Err(SrtpError::Malformed));
    }

    proptest::proptest! {
        /// Any datagram: refused or accepted, never a panic; a valid packet
        /// with any byte changed is refused.
        #[test]
        fn random_datagrams_never_panic_and_tampering_is_caught(
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
            flip in 0usize..200,
            bit in 0u8..8,
        ) {
            let mut rx = SrtpReceiver::new(key(9));
            let _ = rx.unprotect(&mut data.clone());
            let mut tx = SrtpSender::new(key(9));
            let _ = tx.protect(&mut data.clone(), data.len() / 2);
            let good = protect(&mut tx, &packet(1, 2, &[0x33; 160]));
            let mut bad = good.clone();
            let i = flip % good.len();
            bad[i] ^= 1 << bit;
            let mut fresh = SrtpReceiver::new(key(9));
            proptest::prop_assert!(fresh.unprotect(&mut bad).is_err());
            proptest::prop_assert!(fresh.unprotect(&mut good.clone()).is_ok());
        }
    }

    #[test]
    fn inline_keys() {
        let k = MasterKey::random();
        let text = k.to_inline();
        assert_eq!(text.len(), 40);
        assert_eq!(MasterKey::from_inline(&text), Some(k));
        assert_eq!(MasterKey::from_inline(text.trim_end_matches('=')), Some(k));
        assert_ne!(MasterKey::random(), k);
        // RFC 4568's example key.
        assert!(MasterKey::from_inline("WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz").is_some());
        for bad in ["", "abc", "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubG", "!!!!"] {
            assert_eq!(MasterKey::from_inline(bad), None, "{bad}");
        }
        assert_eq!(format!("{k:?}"), "MasterKey(<redacted>)");
        assert!(!format!("{:?}", key(1)).contains(&key(1).key.to_inline()));
        assert_eq!(
            Suite::parse("AES_CM_128_HMAC_SHA1_32"),
            Some(Suite::AesCm128HmacSha1_32)
        );
        assert_eq!(Suite::parse("AES_256_CM_HMAC_SHA1_80"), None);
    }
}
