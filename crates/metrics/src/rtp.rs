//! RTP counter input.

/// RTP counts of one media leg (or a sum of legs), with the same fields as
/// the media engine's `LegStats` (`packets_in`, `bytes_in`, `packets_out`,
/// `bytes_out`, `lost`, `late`, `foreign`; `srtp_refused` sums
/// `srtp_auth_failed` and `srtp_replayed`): the engine copies them field by
/// field.
///
/// The legs' counters are cumulative; metrics counters take increments.
/// Report each leg's final stats when it closes, or, to see live calls move
/// too, report `now.delta_since(&last_reported)` periodically and keep
/// `now` as the new `last_reported`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtpTotals {
    /// Valid RTP packets received.
    pub packets_in: u64,
    /// Bytes of those packets.
    pub bytes_in: u64,
    /// RTP packets sent.
    pub packets_out: u64,
    /// Bytes of those packets.
    pub bytes_out: u64,
    /// Packets missing in the received sequence numbers.
    pub lost: u64,
    /// Packets received late, out of order or duplicated.
    pub late: u64,
    /// Packets dropped because they came from a source the leg does not
    /// accept (not the call's peer, or not its learnt source): hijack
    /// attempts and stray streams.
    pub foreign: u64,
    /// SRTP packets dropped: failed authentication (forged, corrupted,
    /// another key) or replayed.
    pub srtp_refused: u64,
}

/// Sums legs: `total += leg`.
impl std::ops::AddAssign for RtpTotals {
    fn add_assign(&mut self, o: RtpTotals) {
        self.packets_in += o.packets_in;
        self.bytes_in += o.bytes_in;
        self.packets_out += o.packets_out;
        self.bytes_out += o.bytes_out;
        self.lost += o.lost;
        self.late += o.late;
        self.foreign += o.foreign;
        self.srtp_refused += o.srtp_refused;
    }
}

impl RtpTotals {
    /// The increase from `earlier` to `self`, field by field (0 where a
    /// counter went backwards).
    pub fn delta_since(&self, earlier: &RtpTotals) -> RtpTotals {
        RtpTotals {
            packets_in: self.packets_in.saturating_sub(earlier.packets_in),
            bytes_in: self.bytes_in.saturating_sub(earlier.bytes_in),
            packets_out: self.packets_out.saturating_sub(earlier.packets_out),
            bytes_out: self.bytes_out.saturating_sub(earlier.bytes_out),
            lost: self.lost.saturating_sub(earlier.lost),
            late: self.late.saturating_sub(earlier.late),
            foreign: self.foreign.saturating_sub(earlier.foreign),
            srtp_refused: self.srtp_refused.saturating_sub(earlier.srtp_refused),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RtpTotals;

    fn totals(n: u64) -> RtpTotals {
        RtpTotals {
            packets_in: n,
            bytes_in: 2 * n,
            packets_out: 3 * n,
            bytes_out: 4 * n,
            lost: 5 * n,
            late: 6 * n,
            foreign: 7 * n,
            srtp_refused: 8 * n,
        }
    }

    #[test]
    fn legs_add_up_field_by_field() {
        let mut sum = totals(1);
        sum += totals(10);
        assert_eq!(sum, totals(11));
        assert_eq!(sum.delta_since(&totals(1)), totals(10));
    }
}
