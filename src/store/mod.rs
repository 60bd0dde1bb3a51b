//! Where limiter state lives, and the contract the middleware relies on.
//!
//! A [`Store`] decides one request for one key against one quota *tier* (the default set
//! or a per-key override). In-process stores answer at once ([`Check::Ready`]); remote
//! stores (Redis) return a future ([`Check::Pending`]). Both hand back an [`Outcome`],
//! which the caller re-attaches to [`Store::quotas`] to read remaining/reset values.

use std::future::Future;

use crate::decision::Outcome;
use crate::error::StoreError;
use crate::quota::Quotas;

pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;
mod table;

/// Index of a quota set in a store (0 is the default set; see [`Tiers`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Tier(pub usize);

/// The quota sets a store enforces: a default set plus optional per-plan overrides.
///
/// ```
/// use tower_ratelimit::{Quota, Quotas, store::{Tier, Tiers}};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let tiers = Tiers::new(Quotas::claid()).with(Quotas::from(Quota::per_second(40)?));
/// assert_eq!(tiers.len(), 2);
/// assert_eq!(tiers.get(Tier(1)).map(|q| q.len()), Some(1));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tiers(Vec<Quotas>);

impl Tiers {
    /// Tiers with only the default set (tier 0).
    pub fn new(default: impl Into<Quotas>) -> Self {
        Tiers(vec![default.into()])
    }

    /// Adds a tier; it gets the next index (1, 2, ...).
    pub fn with(mut self, quotas: impl Into<Quotas>) -> Self {
        self.0.push(quotas.into());
        self
    }

    /// The quota set of `tier`, if it exists.
    pub fn get(&self, tier: Tier) -> Option<&Quotas> {
        self.0.get(tier.0)
    }

    /// The default set (tier 0).
    pub fn default_set(&self) -> &Quotas {
        &self.0[0]
    }

    /// Number of tiers (at least 1).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always `false`: there is always a default tier.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// All tiers in index order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &Quotas> {
        self.0.iter()
    }
}

impl From<Quotas> for Tiers {
    fn from(q: Quotas) -> Self {
        Tiers::new(q)
    }
}

/// A single quota is a one-quota default set, so
/// `RateLimitLayer::builder(Quota::per_second(10)?)` works.
impl From<crate::Quota> for Tiers {
    fn from(q: crate::Quota) -> Self {
        Tiers::new(q)
    }
}

/// A decision now, or a future that will make one.
#[derive(Debug)]
pub enum Check<F> {
    /// Decided synchronously (in-process stores).
    Ready(Result<Outcome, StoreError>),
    /// Needs I/O; poll the future.
    Pending(F),
}

/// Where limiter state lives. Implemented by [`memory::MemoryStore`] and, with the
/// `redis` feature, by the Redis store.
pub trait Store<K>: Send + Sync + 'static {
    /// The future of a check that needs I/O. In-process stores use
    /// [`std::future::Ready`] and never return it.
    type Future: Future<Output = Result<Outcome, StoreError>> + Send + 'static;

    /// Decides one request of `cost` for `key` against `tier`. An unknown tier falls
    /// back to the default set.
    fn check(&self, key: &K, tier: Tier, cost: u32) -> Check<Self::Future>;

    /// The quota sets this store enforces.
    fn tiers(&self) -> &Tiers;

    /// The quota set of `tier` (the default set for an unknown tier).
    fn quotas(&self, tier: Tier) -> &Quotas {
        let tiers = self.tiers();
        tiers.get(tier).unwrap_or_else(|| tiers.default_set())
    }
}
