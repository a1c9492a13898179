//! Who may use an acquirer connection, and how fast: the per-acquirer rules of `[[acquirer]]`
//! (`connections_max`, `allowed_sources`) and the per-connection request-rate ceiling of
//! `[listener]` (`requests_per_s_max`, `requests_burst_max`).
//!
//! **Owns:** parsing source rules, the table of per-acquirer policies, the count of connections each
//! acquirer holds, and the rate ceiling's arithmetic. Everything here is synchronous and takes
//! time as an argument, so it is tested without sockets or clocks.
//!
//! **Leaves to others:** acting on the outcome. The connection task ([`crate::net::acquirer`])
//! decodes each frame, asks [`Gate`] and [`RateLimiter`], and answers or closes; the runtime
//! journals the declines it is asked to make.
//!
//! **Why this way:** without TLS, the only identity a connection has is what its requests say in
//! field 32, so a connection *becomes* an acquirer's at its first request naming a configured
//! acquirer, and every later request must name the same one. Binding on the first claim (rather
//! than checking each request on its own) is what makes a per-acquirer connection count possible,
//! and it stops one connection from speaking for two institutions. The source address is the one
//! fact a peer cannot choose over TCP, hence `allowed_sources`.
//!
//! With TLS client certificates (`[listener.tls] client_ca_file`), the connection's identity comes
//! from its certificate instead ([`Certified`], mapped through `[[acquirer]] tls_identity`): the
//! gate starts pre-bound to that acquirer and every request must name it, or, for a certificate
//! that names no configured acquirer, every request naming any acquirer is refused. The seat (and
//! so `connections_max`) and `allowed_sources` still apply at the first request, as without TLS.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ipnet::IpNet;
use tokio::time::Instant;

use crate::config::Config;
use crate::domain::AcquirerId;

/// One entry of `allowed_sources`: a single address or a CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceRule(IpNet);

impl SourceRule {
    /// `"10.0.0.0/8"`, `"127.0.0.1"` (a /32) or `"::1"` (a /128); `None` if it is neither.
    pub fn parse(s: &str) -> Option<SourceRule> {
        let s = s.trim();
        if let Ok(net) = s.parse::<IpNet>() {
            return Some(SourceRule(net.trunc()));
        }
        s.parse::<IpAddr>()
            .ok()
            .map(|ip| SourceRule(IpNet::from(ip)))
    }

    /// True when `ip` is inside the rule. IPv4 peers seen through an IPv6 socket
    /// (`::ffff:a.b.c.d`) match IPv4 rules.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }
}

/// What `[[acquirer]]` says about one acquirer's connections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcquirerPolicy {
    /// At most this many connections at once; `None` for no limit of its own.
    pub connections_max: Option<usize>,
    /// Only from these sources; `None` for any.
    pub allowed_sources: Option<Vec<SourceRule>>,
}

impl AcquirerPolicy {
    /// True when `ip` may speak for this acquirer.
    pub fn source_allowed(&self, ip: IpAddr) -> bool {
        self.allowed_sources
            .as_ref()
            .is_none_or(|rules| rules.iter().any(|r| r.contains(ip)))
    }
}

/// Every configured acquirer's policy. Replaced whole on a reload.
#[derive(Debug, Clone, Default)]
pub struct Policies {
    /// foldhash: looked up on every request, and filled from the configuration only.
    by_id: HashMap<AcquirerId, AcquirerPolicy, foldhash::fast::RandomState>,
    /// `tls_identity` (lower-cased) to acquirer.
    by_tls_identity: HashMap<String, AcquirerId>,
}

impl Policies {
    /// From a validated config. An entry whose id or source rules do not parse is skipped (a
    /// validated config has none).
    pub fn from_config(config: &Config) -> Policies {
        let mut by_id =
            HashMap::with_capacity_and_hasher(config.acquirers.len(), Default::default());
        let mut by_tls_identity = HashMap::new();
        for a in &config.acquirers {
            let Ok(id) = AcquirerId::parse(&a.id) else {
                continue;
            };
            if let Some(name) = &a.tls_identity {
                by_tls_identity.insert(name.to_ascii_lowercase(), id);
            }
            let allowed_sources = a
                .allowed_sources
                .as_ref()
                .map(|list| list.iter().filter_map(|s| SourceRule::parse(s)).collect());
            by_id.insert(
                id,
                AcquirerPolicy {
                    connections_max: a.connections_max.map(|n| n as usize),
                    allowed_sources,
                },
            );
        }
        Policies {
            by_id,
            by_tls_identity,
        }
    }

    /// What a verified client certificate carrying `names` (lower-cased SAN DNS names) stands
    /// for: the acquirer whose `tls_identity` is among them, or [`Certified::Unknown`]. Validation
    /// keeps identities unique, so a certificate naming two acquirers is taken as the first
    /// name's that matches.
    pub fn certified(&self, names: &[String]) -> Certified {
        names
            .iter()
            .find_map(|n| self.by_tls_identity.get(n))
            .map_or(Certified::Unknown, |id| Certified::Acquirer(*id))
    }

    /// The policy of a configured acquirer; `None` for an id no `[[acquirer]]` names.
    pub fn get(&self, id: &AcquirerId) -> Option<&AcquirerPolicy> {
        self.by_id.get(id)
    }
}

/// Connections currently held by each acquirer, shared by every connection of a listener.
#[derive(Debug, Default)]
pub struct Admission {
    open: Mutex<HashMap<AcquirerId, usize>>,
}

/// One connection's place in its acquirer's count; given back when dropped.
#[derive(Debug)]
pub struct Seat {
    admission: Arc<Admission>,
    acquirer: AcquirerId,
}

impl Seat {
    pub fn acquirer(&self) -> AcquirerId {
        self.acquirer
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        let mut open = self.admission.lock();
        if let Some(n) = open.get_mut(&self.acquirer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.acquirer);
            }
        }
    }
}

impl Admission {
    pub fn new() -> Arc<Admission> {
        Arc::new(Admission::default())
    }

    /// A seat for one more connection of `acquirer`, unless it already holds `max`.
    pub fn enter(self: &Arc<Self>, acquirer: AcquirerId, max: Option<usize>) -> Option<Seat> {
        let mut open = self.lock();
        let n = open.entry(acquirer).or_insert(0);
        if max.is_some_and(|m| *n >= m) {
            return None;
        }
        *n += 1;
        Some(Seat {
            admission: Arc::clone(self),
            acquirer,
        })
    }

    /// Connections `acquirer` holds now.
    pub fn open(&self, acquirer: &AcquirerId) -> usize {
        self.lock().get(acquirer).copied().unwrap_or(0)
    }

    /// The map is updated by single increments and decrements, so a panic elsewhere cannot leave
    /// it half changed and a poisoned lock is still safe to use.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AcquirerId, usize>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What the gate says about one well-formed request.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Process it.
    Pass,
    /// Answer 63: it names a configured acquirer from a source that acquirer may not use.
    SourceNotAllowed(AcquirerId),
    /// Answer 63: the connection already belongs to another acquirer.
    AcquirerChanged {
        bound: AcquirerId,
        claimed: AcquirerId,
    },
    /// Answer 91 and close: the acquirer already holds its `connections_max`.
    AcquirerFull(AcquirerId),
    /// Answer 63: the connection's client certificate identifies `certified`, not `claimed`.
    CertificateMismatch {
        certified: AcquirerId,
        claimed: AcquirerId,
    },
    /// Answer 63: the connection's client certificate identifies no configured acquirer.
    CertificateUnknown(AcquirerId),
}

/// What a connection's verified TLS client certificate says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Certified {
    /// The acquirer whose `tls_identity` the certificate carries.
    Acquirer(AcquirerId),
    /// A certificate from the trusted CA that no `tls_identity` matches.
    Unknown,
}

/// One connection's identity: unbound until a request names a configured acquirer, or pre-bound
/// by its client certificate.
#[derive(Debug)]
pub struct Gate {
    peer: IpAddr,
    seat: Option<Seat>,
    certified: Option<Certified>,
}

impl Gate {
    pub fn new(peer: IpAddr) -> Gate {
        Gate {
            peer,
            seat: None,
            certified: None,
        }
    }

    /// A gate for a connection whose client certificate says `certified`: it may only ever
    /// speak as that acquirer.
    pub fn certified(peer: IpAddr, certified: Certified) -> Gate {
        Gate {
            peer,
            seat: None,
            certified: Some(certified),
        }
    }

    /// The acquirer this connection belongs to, once bound.
    pub fn acquirer(&self) -> Option<AcquirerId> {
        self.seat.as_ref().map(Seat::acquirer)
    }

    /// Checks a request whose field 32 reads `claimed`. An id that no `[[acquirer]]` names passes:
    /// screening answers it 03 and it binds nothing. The first configured id from an allowed
    /// source binds the connection (taking a seat); later requests must name the same one.
    pub fn check(
        &mut self,
        claimed: AcquirerId,
        policies: &Policies,
        admission: &Arc<Admission>,
    ) -> Verdict {
        // A certificate's identity is checked before the id is looked up: a certified connection
        // may not send as anyone else, configured or not.
        match self.certified {
            Some(Certified::Unknown) => return Verdict::CertificateUnknown(claimed),
            Some(Certified::Acquirer(certified)) if certified != claimed => {
                return Verdict::CertificateMismatch { certified, claimed };
            }
            _ => {}
        }
        let Some(policy) = policies.get(&claimed) else {
            return Verdict::Pass;
        };
        if let Some(bound) = self.acquirer() {
            return if bound == claimed {
                Verdict::Pass
            } else {
                Verdict::AcquirerChanged { bound, claimed }
            };
        }
        if !policy.source_allowed(self.peer) {
            return Verdict::SourceNotAllowed(claimed);
        }
        match admission.enter(claimed, policy.connections_max) {
            Some(seat) => {
                self.seat = Some(seat);
                Verdict::Pass
            }
            None => Verdict::AcquirerFull(claimed),
        }
    }
}

/// The per-connection request-rate ceiling: `rate` requests per second sustained, with bursts
/// of up to `burst` above it.
///
/// It is the generic cell rate algorithm (the token bucket written with one timestamp): each
/// request moves a theoretical arrival time one interval (1 s / rate, in whole nanoseconds, so
/// the real ceiling is at most a few parts per billion above `rate`) into the future, and a
/// request is refused while that time is more than `burst - 1` intervals ahead of now. Integer
/// durations only: no drift, no floating point.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    interval: Duration,
    tolerance: Duration,
    tat: Option<Instant>,
}

impl RateLimiter {
    /// `rate` and `burst` of 0 are taken as 1 (config validation refuses 0).
    pub fn new(rate: u32, burst: u32) -> RateLimiter {
        let interval = Duration::from_nanos(1_000_000_000 / u64::from(rate.max(1)));
        RateLimiter {
            interval,
            tolerance: interval.saturating_mul(burst.max(1) - 1),
            tat: None,
        }
    }

    /// True when a request arriving at `now` is within the ceiling (and counts it); false when it
    /// is over, which costs nothing against later requests.
    pub fn admit(&mut self, now: Instant) -> bool {
        let tat = self.tat.map_or(now, |t| t.max(now));
        if tat.duration_since(now) > self.tolerance {
            return false;
        }
        self.tat = Some(tat + self.interval);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn id(s: &str) -> AcquirerId {
        AcquirerId::parse(s).expect("acquirer id")
    }

    #[test]
    fn source_rules_parse_addresses_and_blocks() {
        let one = SourceRule::parse("127.0.0.1").expect("address");
        assert!(one.contains(ip("127.0.0.1")));
        assert!(!one.contains(ip("127.0.0.2")));
        let block = SourceRule::parse("10.0.0.0/8").expect("block");
        assert!(block.contains(ip("10.200.3.4")));
        assert!(!block.contains(ip("11.0.0.1")));
        // Host bits set in a block are ignored, as routers do.
        let loose = SourceRule::parse("10.1.2.3/8").expect("block with host bits");
        assert!(loose.contains(ip("10.9.9.9")));
        let v6 = SourceRule::parse("::1").expect("v6");
        assert!(v6.contains(ip("::1")));
        assert!(!v6.contains(ip("127.0.0.1")));
        // An IPv4 peer on a dual-stack socket.
        assert!(one.contains(ip("::ffff:127.0.0.1")));
        for bad in ["", "localhost", "10.0.0.0/33", "1.2.3", "10.0.0.0/"] {
            assert!(SourceRule::parse(bad).is_none(), "{bad:?}");
        }
    }

    fn policies(text: &str) -> Policies {
        let config = Config::from_toml_str(text, "test.toml").expect("config");
        Policies::from_config(&config)
    }

    const TWO: &str = r#"
[[acquirer]]
id = "100001"
name = "A"
connections_max = 2
allowed_sources = ["127.0.0.1", "10.0.0.0/8"]

[[acquirer]]
id = "100002"
name = "B"
"#;

    #[test]
    fn first_configured_claim_binds_and_later_ones_must_match() {
        let p = policies(TWO);
        let adm = Admission::new();
        let mut g = Gate::new(ip("10.1.1.1"));
        // An unknown id neither binds nor is refused here (screening answers it 03).
        assert_eq!(g.check(id("999"), &p, &adm), Verdict::Pass);
        assert_eq!(g.acquirer(), None);
        assert_eq!(g.check(id("100001"), &p, &adm), Verdict::Pass);
        assert_eq!(g.acquirer(), Some(id("100001")));
        assert_eq!(adm.open(&id("100001")), 1);
        assert_eq!(g.check(id("100001"), &p, &adm), Verdict::Pass);
        assert_eq!(adm.open(&id("100001")), 1, "one seat per connection");
        assert_eq!(
            g.check(id("100002"), &p, &adm),
            Verdict::AcquirerChanged {
                bound: id("100001"),
                claimed: id("100002")
            }
        );
        assert_eq!(g.check(id("999"), &p, &adm), Verdict::Pass);
        drop(g);
        assert_eq!(adm.open(&id("100001")), 0, "the seat is given back");
    }

    #[test]
    fn a_source_outside_the_list_is_refused_and_binds_nothing() {
        let p = policies(TWO);
        let adm = Admission::new();
        let mut g = Gate::new(ip("192.168.1.5"));
        assert_eq!(
            g.check(id("100001"), &p, &adm),
            Verdict::SourceNotAllowed(id("100001"))
        );
        assert_eq!(g.acquirer(), None);
        assert_eq!(adm.open(&id("100001")), 0);
        // B has no list: any source.
        assert_eq!(g.check(id("100002"), &p, &adm), Verdict::Pass);
        assert_eq!(g.acquirer(), Some(id("100002")));
    }

    #[test]
    fn connections_max_counts_bound_connections_only() {
        let p = policies(TWO);
        let adm = Admission::new();
        let mut a = Gate::new(ip("127.0.0.1"));
        let mut b = Gate::new(ip("127.0.0.1"));
        let mut c = Gate::new(ip("127.0.0.1"));
        assert_eq!(a.check(id("100001"), &p, &adm), Verdict::Pass);
        assert_eq!(b.check(id("100001"), &p, &adm), Verdict::Pass);
        assert_eq!(
            c.check(id("100001"), &p, &adm),
            Verdict::AcquirerFull(id("100001"))
        );
        assert_eq!(c.acquirer(), None);
        drop(a);
        assert_eq!(c.check(id("100001"), &p, &adm), Verdict::Pass);
        assert_eq!(adm.open(&id("100001")), 2);
        // B has no limit of its own.
        let gates: Vec<Gate> = (0..50)
            .map(|_| {
                let mut g = Gate::new(ip("127.0.0.1"));
                assert_eq!(g.check(id("100002"), &p, &adm), Verdict::Pass);
                g
            })
            .collect();
        assert_eq!(adm.open(&id("100002")), 50);
        drop(gates);
        assert_eq!(adm.open(&id("100002")), 0);
    }

    const CERTIFIED: &str = r#"
[listener.tls]
cert_file = "Cargo.toml"
key_file = "Cargo.toml"
client_ca_file = "Cargo.toml"

[[acquirer]]
id = "100001"
name = "A"
connections_max = 1
tls_identity = "ACQ-100001.example"

[[acquirer]]
id = "100002"
name = "B"
tls_identity = "acq-100002.example"
"#;

    #[test]
    fn a_certificate_pre_binds_the_gate_to_its_acquirer() {
        let p = policies(CERTIFIED);
        let adm = Admission::new();
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            p.certified(&names(&["other.example", "acq-100001.example"])),
            Certified::Acquirer(id("100001"))
        );
        assert_eq!(p.certified(&names(&["other.example"])), Certified::Unknown);
        assert_eq!(p.certified(&[]), Certified::Unknown);

        let mut g = Gate::certified(ip("127.0.0.1"), Certified::Acquirer(id("100001")));
        assert_eq!(g.acquirer(), None, "the seat is taken at the first request");
        for other in ["100002", "999"] {
            assert_eq!(
                g.check(id(other), &p, &adm),
                Verdict::CertificateMismatch {
                    certified: id("100001"),
                    claimed: id(other)
                }
            );
        }
        assert_eq!(adm.open(&id("100001")), 0);
        assert_eq!(g.check(id("100001"), &p, &adm), Verdict::Pass);
        assert_eq!(g.acquirer(), Some(id("100001")));
        // connections_max still applies to certified connections.
        let mut second = Gate::certified(ip("127.0.0.1"), Certified::Acquirer(id("100001")));
        assert_eq!(
            second.check(id("100001"), &p, &adm),
            Verdict::AcquirerFull(id("100001"))
        );

        let mut unknown = Gate::certified(ip("127.0.0.1"), Certified::Unknown);
        for any in ["100001", "100002", "999"] {
            assert_eq!(
                unknown.check(id(any), &p, &adm),
                Verdict::CertificateUnknown(id(any))
            );
        }
        assert_eq!(unknown.acquirer(), None);
    }

    #[test]
    fn rate_limiter_allows_the_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(10, 3);
        // A burst of 3 at once, then nothing until an interval (100 ms) has passed.
        assert!(r.admit(t0));
        assert!(r.admit(t0));
        assert!(r.admit(t0));
        assert!(!r.admit(t0));
        assert!(!r.admit(t0 + Duration::from_millis(99)));
        assert!(r.admit(t0 + Duration::from_millis(100)));
        assert!(!r.admit(t0 + Duration::from_millis(100)));
        // Refused requests cost nothing: after a second of quiet the whole burst is back.
        let later = t0 + Duration::from_secs(2);
        for _ in 0..3 {
            assert!(r.admit(later));
        }
        assert!(!r.admit(later));
    }

    #[test]
    fn rate_limiter_sustains_exactly_the_rate() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(1000, 1);
        // One request every 500 µs for 2 s: twice the rate, so half are admitted.
        let admitted = (0..4000)
            .filter(|i| r.admit(t0 + Duration::from_micros(500 * i)))
            .count();
        assert_eq!(admitted, 2000);
    }
}
