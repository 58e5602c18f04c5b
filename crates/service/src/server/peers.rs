//! Per-peer budgets for what anyone may use without credentials: connection slots and audit log
//! lines for refusals.
//!
//! A peer is an IPv4 address or an IPv6 /64: one host usually holds a whole /64, so counting
//! single IPv6 addresses would let it multiply its budget at will.
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Above this many tracked peers, the refusal budgets with nothing to report are forgotten, so
/// the table cannot grow without bound under a spray of addresses.
const MAX_TRACKED: usize = 16 * 1024;

/// The key budgets are counted under.
pub fn peer_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// Connection slots per peer.
pub struct PeerSlots {
    max: usize,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's slot, given back when dropped.
pub struct PeerSlot {
    slots: Arc<PeerSlots>,
    key: IpAddr,
}

impl PeerSlots {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            counts: Mutex::new(HashMap::new()),
        })
    }

    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<PeerSlot> {
        let key = peer_key(ip);
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(key).or_default();
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            slots: self.clone(),
            key,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut counts = self.slots.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

/// Whether a refusal gets its audit line.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    /// Write it, after a line saying how many of this peer's refusals went unlogged before it
    /// (if any).
    Write { suppressed: u64 },
    /// Over this peer's budget for the current second: counted, not written.
    Suppress,
}

struct Window {
    second: u64,
    written: u32,
    suppressed: u64,
}

/// At most `per_sec` refusal lines per peer in each whole second.
pub struct RefusalGate {
    per_sec: u32,
    start: Instant,
    peers: Mutex<HashMap<IpAddr, Window>>,
}

impl RefusalGate {
    pub fn new(per_sec: u32) -> Self {
        Self {
            per_sec,
            start: Instant::now(),
            peers: Mutex::new(HashMap::new()),
        }
    }

    pub fn admit(&self, ip: IpAddr) -> Admit {
        self.admit_at(peer_key(ip), self.start.elapsed().as_secs())
    }

    fn admit_at(&self, key: IpAddr, second: u64) -> Admit {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        if peers.len() >= MAX_TRACKED && !peers.contains_key(&key) {
            peers.retain(|_, w| w.suppressed > 0 || w.second == second);
        }
        let w = peers.entry(key).or_insert(Window {
            second,
            written: 0,
            suppressed: 0,
        });
        if w.second != second {
            w.second = second;
            w.written = 0;
        }
        if w.written >= self.per_sec {
            w.suppressed += 1;
            return Admit::Suppress;
        }
        w.written += 1;
        Admit::Write {
            suppressed: std::mem::take(&mut w.suppressed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_peers_are_counted_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::7".parse().unwrap();
        assert_eq!(peer_key(a), peer_key(b));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(peer_key(mapped), "192.0.2.1".parse::<IpAddr>().unwrap());
        let slots = PeerSlots::new(1);
        let held = slots.try_acquire(a).unwrap();
        assert!(slots.try_acquire(b).is_none());
        assert!(slots
            .try_acquire("2001:db8:1:3::1".parse().unwrap())
            .is_some());
        drop(held);
        assert!(slots.try_acquire(b).is_some());
    }

    #[test]
    fn refusals_over_budget_are_counted_and_reported_once() {
        let gate = RefusalGate::new(2);
        let p: IpAddr = "192.0.2.1".parse().unwrap();
        let q: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(gate.admit_at(p, 5), Admit::Write { suppressed: 0 });
        assert_eq!(gate.admit_at(p, 5), Admit::Write { suppressed: 0 });
        assert_eq!(gate.admit_at(p, 5), Admit::Suppress);
        assert_eq!(gate.admit_at(p, 5), Admit::Suppress);
        assert_eq!(gate.admit_at(q, 5), Admit::Write { suppressed: 0 });
        assert_eq!(gate.admit_at(p, 6), Admit::Write { suppressed: 2 });
        assert_eq!(gate.admit_at(p, 6), Admit::Write { suppressed: 0 });
    }
}
