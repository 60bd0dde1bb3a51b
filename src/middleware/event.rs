//! What the middleware decided, for metrics hooks ([`DecisionEvent`]) and built-in
//! counters ([`Stats`]).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::decision::Decision;
use crate::error::StoreError;
use crate::key::RequestHead;
use crate::quota::MAX_QUOTAS;
use crate::store::{Tier, Tiers};

/// What happened to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Verdict {
    /// Checked and admitted.
    Admitted,
    /// Checked, denied and answered with a rejection.
    Denied,
    /// Checked and denied, but passed on because the layer is in shadow (dry-run) mode.
    ShadowDenied,
    /// Not checked: the exempt predicate matched, or the request's cost was 0.
    Exempt,
    /// No key could be extracted; answered per the layer's [`MissingKey`](crate::MissingKey).
    KeyMissing,
    /// The store could not decide; answered by the renderer (413 for a cost that can
    /// never fit, 503 otherwise).
    StoreError,
}

/// One decision of the middleware, handed to the
/// [`on_decision`](crate::RateLimitLayerBuilder::on_decision) hook.
///
/// The hook runs on the request path for every request: keep it cheap (increment a
/// counter), and do not block.
pub struct DecisionEvent<'a> {
    pub(crate) verdict: Verdict,
    pub(crate) head: RequestHead<'a>,
    pub(crate) key: Option<&'a dyn fmt::Display>,
    pub(crate) tier: Tier,
    pub(crate) plan: Option<&'a str>,
    pub(crate) decision: Option<Decision<'a>>,
    pub(crate) error: Option<&'a StoreError>,
    pub(crate) rejected: bool,
}

impl fmt::Debug for DecisionEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecisionEvent")
            .field("verdict", &self.verdict)
            .field("tier", &self.tier)
            .field("plan", &self.plan)
            .field("policy", &self.policy())
            .finish_non_exhaustive()
    }
}

impl<'a> DecisionEvent<'a> {
    /// What happened.
    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    /// The request.
    pub fn head(&self) -> &RequestHead<'a> {
        &self.head
    }

    /// The request's key, if one was extracted. This is the raw key (an IP, an API key):
    /// mind where you export it.
    pub fn key(&self) -> Option<&'a dyn fmt::Display> {
        self.key
    }

    /// The tier the request was checked against.
    pub fn tier(&self) -> Tier {
        self.tier
    }

    /// The name of the plan the request was checked against (`"default"` for the default
    /// set; see [`Tiers::plan`](crate::store::Tiers::plan)); `None` for a tier the store
    /// does not have.
    pub fn plan(&self) -> Option<&'a str> {
        self.plan
    }

    /// The store's decision, when one was made.
    pub fn decision(&self) -> Option<&Decision<'a>> {
        self.decision.as_ref()
    }

    /// The store's error, for [`Verdict::StoreError`].
    pub fn error(&self) -> Option<&'a StoreError> {
        self.error
    }

    /// The policy to count this request against: for a denial (shadow or not) the quota
    /// that denied, for an admission the quota closest to exhaustion.
    pub fn policy(&self) -> Option<&'a str> {
        self.decision.as_ref().map(|d| d.binding().quota().name())
    }

    /// Whether the middleware answered the request itself (through its renderer) instead
    /// of calling the inner service: a denial, a store error, and a missing key unless the
    /// layer lets such requests pass ([`MissingKey::Allow`](crate::MissingKey)).
    pub fn rejected(&self) -> bool {
        self.rejected
    }
}

/// Per-tier atomic counters, enabled with
/// [`RateLimitLayerBuilder::stats`](crate::RateLimitLayerBuilder::stats).
#[derive(Debug)]
pub(crate) struct Counters {
    tiers: Vec<TierCounters>,
    exempt: AtomicU64,
    key_missing: AtomicU64,
    errors: AtomicU64,
}

#[derive(Debug, Default)]
struct TierCounters {
    admitted: AtomicU64,
    denied: [AtomicU64; MAX_QUOTAS],
    shadow_denied: [AtomicU64; MAX_QUOTAS],
}

impl Counters {
    pub(crate) fn new(tiers: &Tiers) -> Self {
        Counters {
            tiers: (0..tiers.len()).map(|_| TierCounters::default()).collect(),
            exempt: AtomicU64::new(0),
            key_missing: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    pub(crate) fn record(&self, verdict: Verdict, tier: Tier, decision: Option<&Decision<'_>>) {
        // Plans added by a reload are not counted here (the counters are sized at build).
        let Some(t) = self.tiers.get(tier.0) else {
            return;
        };
        let by = decision
            .and_then(|d| d.denied_by())
            .map_or(0, |q| q.index());
        let c = match verdict {
            Verdict::Admitted => &t.admitted,
            Verdict::Denied => &t.denied[by],
            Verdict::ShadowDenied => &t.shadow_denied[by],
            Verdict::Exempt => &self.exempt,
            Verdict::KeyMissing => &self.key_missing,
            Verdict::StoreError => &self.errors,
        };
        c.fetch_add(1, Relaxed);
    }

    pub(crate) fn snapshot(&self, tiers: &Tiers) -> Stats {
        let mut s = Stats {
            exempt: self.exempt.load(Relaxed),
            key_missing: self.key_missing.load(Relaxed),
            errors: self.errors.load(Relaxed),
            ..Stats::default()
        };
        for (i, (c, quotas)) in self.tiers.iter().zip(tiers.iter()).enumerate() {
            let admitted = c.admitted.load(Relaxed);
            s.admitted += admitted;
            for (j, q) in quotas.iter().enumerate() {
                let denied = c.denied[j].load(Relaxed);
                let shadow_denied = c.shadow_denied[j].load(Relaxed);
                s.denied += denied;
                s.shadow_denied += shadow_denied;
                s.policies.push(PolicyStats {
                    tier: Tier(i),
                    name: q.name().to_owned(),
                    admitted,
                    denied,
                    shadow_denied,
                });
            }
        }
        s
    }
}

/// Totals since the layer was built (see [`RateLimitLayer::stats`](crate::RateLimitLayer::stats)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Requests admitted.
    pub admitted: u64,
    /// Requests denied and rejected.
    pub denied: u64,
    /// Requests that would have been denied, passed on in shadow mode.
    pub shadow_denied: u64,
    /// Requests exempted (predicate or zero cost).
    pub exempt: u64,
    /// Requests without a key.
    pub key_missing: u64,
    /// Requests the store could not decide.
    pub errors: u64,
    /// Per policy (each quota of each tier).
    pub policies: Vec<PolicyStats>,
}

/// Totals for one policy (one quota of one tier).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PolicyStats {
    /// The tier the quota belongs to.
    pub tier: Tier,
    /// The quota's name.
    pub name: String,
    /// Requests admitted in this tier (every quota of the tier counts each).
    pub admitted: u64,
    /// Requests this quota denied.
    pub denied: u64,
    /// Requests this quota would have denied (shadow mode).
    pub shadow_denied: u64,
}
