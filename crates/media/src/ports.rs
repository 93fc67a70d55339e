//! RTP port allocation: a random free even port of the configured range
//! for each leg (RTCP would use the odd port above it), so that the port of
//! the next call cannot be predicted from the last one.
//!
//! Free ports sit in a vector (random pick, `swap_remove`: O(1)). A port
//! released by a leg first goes through a FIFO "cooling" queue holding up
//! to half of the idle ports, so it is not handed out again right away:
//! late packets of the call that used it (or an attacker who learnt it)
//! do not meet the next call on it. When every idle port is cooling, the
//! one released longest ago is used. The mutex is held only to pick or
//! return a port, never across the `bind` system call.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use parking_lot::Mutex;
use rand::Rng;

use crate::engine::MediaError;

/// Allocates RTP ports of `min..=max` (even ports only).
pub(crate) struct PortAllocator {
    bind_ip: IpAddr,
    min: u16,
    max: u16,
    state: Mutex<PortState>,
}

struct PortState {
    /// Idle ports that may be handed out now, in no particular order.
    free: Vec<u16>,
    /// Idle ports released recently, oldest first.
    cooling: VecDeque<u16>,
    /// Ports held by open legs.
    in_use: usize,
}

impl PortState {
    /// Takes a random free port, else the port that has cooled longest.
    fn take(&mut self) -> Option<u16> {
        if self.free.is_empty() {
            return self.cooling.pop_front();
        }
        let i = rand::rng().random_range(0..self.free.len());
        Some(self.free.swap_remove(i))
    }

    /// Returns an idle port: it cools first; the queue is kept to at most
    /// half of the idle ports so that random picks keep a wide choice.
    fn give_back(&mut self, port: u16) {
        self.cooling.push_back(port);
        while self.cooling.len() > self.free.len() + 1 {
            match self.cooling.pop_front() {
                Some(p) => self.free.push(p),
                None => break,
            }
        }
    }
}

/// Holds an allocated port; releases it when dropped.
pub(crate) struct PortLease {
    /// The port.
    pub(crate) port: u16,
    alloc: Arc<PortAllocator>,
}

impl Drop for PortLease {
    fn drop(&mut self) {
        let mut st = self.alloc.state.lock();
        st.in_use = st.in_use.saturating_sub(1);
        st.give_back(self.port);
    }
}

impl PortAllocator {
    /// An allocator of the even ports of `min..=max` (the caller checked
    /// that the range holds one).
    pub(crate) fn new(bind_ip: IpAddr, min: u16, max: u16) -> Self {
        let first = min.saturating_add(min & 1);
        let free: Vec<u16> = (first..=max).step_by(2).collect();
        PortAllocator {
            bind_ip,
            min,
            max,
            state: Mutex::new(PortState {
                cooling: VecDeque::with_capacity(free.len()),
                free,
                in_use: 0,
            }),
        }
    }

    /// Number of ports held by open legs.
    pub(crate) fn in_use(&self) -> usize {
        self.state.lock().in_use
    }

    /// Binds a socket on a random idle even port. Ports another process
    /// holds are skipped (they cool and are tried again later); every
    /// idle port is tried at most once per call.
    pub(crate) fn allocate(
        self: &Arc<Self>,
    ) -> Result<(std::net::UdpSocket, PortLease), MediaError> {
        let attempts = {
            let st = self.state.lock();
            st.free.len() + st.cooling.len()
        };
        let mut last_err = None;
        for _ in 0..attempts {
            let Some(port) = self.state.lock().take() else {
                break;
            };
            let addr = SocketAddr::new(self.bind_ip, port);
            match std::net::UdpSocket::bind(addr) {
                Ok(sock) => {
                    self.state.lock().in_use += 1;
                    return Ok((
                        sock,
                        PortLease {
                            port,
                            alloc: self.clone(),
                        },
                    ));
                }
                Err(e) => {
                    self.state.lock().give_back(port);
                    if e.kind() != std::io::ErrorKind::AddrInUse {
                        last_err = Some((addr, e));
                    }
                }
            }
        }
        match last_err {
            Some((addr, error)) => Err(MediaError::Bind { addr, error }),
            None => Err(MediaError::PortsExhausted {
                min: self.min,
                max: self.max,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn alloc(min: u16, max: u16) -> Arc<PortAllocator> {
        Arc::new(PortAllocator::new("127.0.0.1".parse().unwrap(), min, max))
    }

    /// The state machine alone (no sockets): picks are random over the
    /// whole range, a released port cools before it is picked again.
    #[test]
    fn picks_cover_the_range_and_released_ports_cool() {
        let a = alloc(50_000, 50_199);
        let mut st = a.state.lock();
        assert_eq!(st.free.len(), 100);
        // Draw and return one port at a time, 2000 times: every port comes
        // up, and never the one just returned while others are idle.
        let mut seen = HashSet::new();
        let mut last = None;
        for _ in 0..2000 {
            let p = st.take().unwrap();
            assert_eq!(p % 2, 0);
            assert!((50_000..=50_199).contains(&p));
            assert_ne!(Some(p), last, "port reused right after release");
            seen.insert(p);
            st.give_back(p);
            last = Some(p);
        }
        assert_eq!(seen.len(), 100, "random allocation covers the range");
        // Not round-robin: consecutive picks are not evenly spaced.
        let picks: Vec<u16> = (0..20).map(|_| st.take().unwrap()).collect();
        let steps: HashSet<u16> = picks.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect();
        assert!(steps.len() > 3, "{picks:?}");
    }

    #[test]
    fn taken_ports_are_distinct_until_exhausted_then_oldest_cooled_first() {
        let a = alloc(50_001, 50_020); // even ports 50002..=50020: 10
        let mut st = a.state.lock();
        let mut held: Vec<u16> = (0..10).map(|_| st.take().unwrap()).collect();
        let distinct: HashSet<u16> = held.iter().copied().collect();
        assert_eq!(distinct.len(), 10);
        assert_eq!(st.take(), None);
        // Everything in use: the first returned is the first handed out.
        let first = held.remove(0);
        let second = held.remove(0);
        st.give_back(first);
        st.give_back(second);
        assert_eq!(st.take(), Some(first));
        assert_eq!(st.take(), Some(second));
        assert_eq!(st.take(), None);
    }

    #[tokio::test]
    async fn allocate_never_returns_a_port_in_use() {
        let a = alloc(51_000, 51_039); // 20 even ports
        let mut leases = Vec::new();
        for round in 0..50 {
            // Hold about ten, release a random half, repeat.
            while leases.len() < 10 {
                let (sock, lease) = a.allocate().expect("a free port");
                assert_eq!(sock.local_addr().unwrap().port(), lease.port);
                let ports: HashSet<u16> = leases
                    .iter()
                    .map(|(_, l): &(std::net::UdpSocket, PortLease)| l.port)
                    .collect();
                assert!(!ports.contains(&lease.port), "round {round}");
                leases.push((sock, lease));
            }
            assert_eq!(a.in_use(), 10);
            let keep = rand::rng().random_range(3..8);
            leases.truncate(keep);
            assert_eq!(a.in_use(), keep);
        }
    }
}
