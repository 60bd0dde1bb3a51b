//! One loud warning when the IP extractors see traffic that says they are set up wrong
//! (in the spirit of express-rate-limit's `ERR_ERL_UNEXPECTED_X_FORWARDED_FOR`), and
//! never more than one per extractor: after it fired, the check is one relaxed load.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::HeaderMap;
use http::header::FORWARDED;

use super::cidr::is_internal;
use super::forwarded::{ProxyHeader, X_FORWARDED_FOR, X_REAL_IP};

/// Whether an extractor has warned yet. Clones share the flag, so every clone of a
/// layer (axum clones one per route) warns once between them.
#[derive(Debug, Clone)]
pub(crate) enum WarnOnce {
    /// One flag for the whole process (what a `const` extractor can hold).
    Process,
    /// A flag of this extractor and its clones.
    Own(Arc<AtomicBool>),
}

static PROCESS: AtomicBool = AtomicBool::new(false);

impl WarnOnce {
    pub(crate) fn new() -> Self {
        WarnOnce::Own(Arc::new(AtomicBool::new(false)))
    }

    fn flag(&self) -> &AtomicBool {
        match self {
            WarnOnce::Process => &PROCESS,
            WarnOnce::Own(flag) => flag,
        }
    }

    /// Not warned yet (the one load on the hot path).
    #[inline]
    pub(crate) fn pending(&self) -> bool {
        !self.flag().load(Ordering::Relaxed)
    }

    /// Claims the warning: true for exactly one caller.
    fn claim(&self) -> bool {
        !self.flag().swap(true, Ordering::Relaxed)
    }
}

/// The first forwarding header present, in the order proxies most often set them.
fn forwarding_header(headers: &HeaderMap) -> Option<ProxyHeader> {
    if headers.contains_key(X_FORWARDED_FOR) {
        Some(ProxyHeader::XForwardedFor)
    } else if headers.contains_key(FORWARDED) {
        Some(ProxyHeader::Forwarded)
    } else if headers.contains_key(X_REAL_IP) {
        Some(ProxyHeader::XRealIp)
    } else {
        None
    }
}

/// An address as a warning shows it: infrastructure addresses in full, a member of the
/// public's not at all (logs show keys hashed unless asked).
struct Shown(IpAddr);

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if is_internal(self.0) {
            write!(f, "{}", self.0)
        } else {
            f.write_str("a public address")
        }
    }
}

/// `PeerIp` saw a forwarding header from a loopback or private peer: most likely a
/// proxy, whose clients then all share its one limit.
#[cold]
pub(crate) fn peer_ip(gate: &WarnOnce, peer: IpAddr, headers: &HeaderMap) {
    if !is_internal(peer) {
        return;
    }
    let Some(header) = forwarding_header(headers) else {
        return;
    };
    if gate.claim() {
        tracing::warn!(
            target: "tower_ratelimit",
            peer = %peer,
            header = header.name(),
            "requests from {peer} carry {} but the rate-limit key is the peer address, so \
             every client behind that proxy shares one limit: use \
             ClientIp::{}([...trusted proxies]) if a proxy you run sets it",
            header.name(),
            header.constructor(),
        );
    }
}

/// `ClientIp` saw a forwarding header from a peer it does not trust: its proxy is
/// probably missing from the trusted list, and all its clients share the proxy's limit.
#[cold]
pub(crate) fn untrusted_peer(
    gate: &WarnOnce,
    chosen: ProxyHeader,
    peer: IpAddr,
    headers: &HeaderMap,
) {
    let Some(header) = forwarding_header(headers) else {
        return;
    };
    if gate.claim() {
        let peer = Shown(peer);
        tracing::warn!(
            target: "tower_ratelimit",
            peer = %peer,
            header = header.name(),
            "requests from {peer} carry {} but that peer is not a trusted proxy, so the \
             header is ignored and the key is the peer address: if it is your proxy, add \
             its network to ClientIp::{}([...])",
            header.name(),
            chosen.constructor(),
        );
    }
}

/// `ClientIp` saw a trusted peer send another forwarding header but not the chosen
/// one: the proxy sets a different header, and all its clients share its limit.
#[cold]
pub(crate) fn other_header(
    gate: &WarnOnce,
    chosen: ProxyHeader,
    peer: IpAddr,
    headers: &HeaderMap,
) {
    let Some(header) = forwarding_header(headers).filter(|&h| h != chosen) else {
        return;
    };
    if gate.claim() {
        let peer = Shown(peer);
        tracing::warn!(
            target: "tower_ratelimit",
            peer = %peer,
            header = header.name(),
            "requests from trusted proxy {peer} carry {} but no {}, so the key is the \
             proxy's address and its clients share one limit: use ClientIp::{}([...]) if \
             that proxy sets {}",
            header.name(),
            chosen.name(),
            header.constructor(),
            header.name(),
        );
    }
}
