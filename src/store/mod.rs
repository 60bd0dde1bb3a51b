//! Where limiter state lives, and the contract the middleware relies on.
//!
//! A [`Store`] decides one request for one key against one quota *tier* (the default set
//! or a per-key override). In-process stores answer at once ([`Check::Ready`]); remote
//! stores (Redis) return a future ([`Check::Pending`]). Both hand back an [`Outcome`],
//! which the caller re-attaches to [`Store::quotas`] to read remaining/reset values.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;

use crate::decision::Outcome;
use crate::error::{CheckError, ReloadError, StoreError};

use crate::quota::Quotas;
pub use check_future::{CheckFuture, Defer, take_ready};
pub use generations::MAX_GENERATIONS;

mod check_future;
pub(crate) mod generations;
pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "serde")]
mod serde;
mod table;

/// A handle on one quota set of a [`Tiers`] table: the default set or a named plan.
///
/// Obtain handles by name when the layer is built ([`Tiers::tier`]) and return them from
/// the tier resolver; a handle that names no set is an error
/// ([`CheckError::UnknownTier`]) when a request is
/// checked against it, never a silent fall-back to the default set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Tier(pub usize);

impl Tier {
    /// The default set.
    pub const DEFAULT: Tier = Tier(0);
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tier {}", self.0)
    }
}

/// The name of the default set in a [`Tiers`] table.
pub const DEFAULT_PLAN: &str = "default";

/// The quota sets a store enforces: a default set plus named plans (`free`, `pro`, ...).
///
/// ```
/// use tower_ratelimit::{Quota, Quotas, store::{Tier, Tiers}};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let tiers = Tiers::new(Quotas::claid()).plan("pro", "40/s".parse::<Quotas>()?);
/// assert_eq!(tiers.len(), 2);
/// let pro = tiers.tier("pro").expect("declared above");
/// assert_eq!(tiers.get(pro).map(|q| q.to_string()), Some("40/s".to_owned()));
/// assert_eq!(tiers.name(pro), Some("pro"));
/// assert_eq!(tiers.tier("default"), Some(Tier::DEFAULT));
/// assert_eq!(tiers.tier("gold"), None, "unknown plans are not guessed");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tiers {
    sets: Vec<Quotas>,
    names: Vec<Cow<'static, str>>,
}

impl Tiers {
    /// Tiers with only the default set (tier 0, named [`DEFAULT_PLAN`]).
    pub fn new(default: impl Into<Quotas>) -> Self {
        Tiers {
            sets: vec![default.into()],
            names: vec![Cow::Borrowed(DEFAULT_PLAN)],
        }
    }

    /// Adds the plan `name`, or replaces its quota set if the name is already there (so
    /// `plan("default", ...)` replaces the default set). A new plan gets the next index.
    pub fn plan(mut self, name: impl Into<Cow<'static, str>>, quotas: impl Into<Quotas>) -> Self {
        let name = name.into();
        let quotas = quotas.into();
        match self.names.iter().position(|n| *n == name) {
            Some(i) => self.sets[i] = quotas,
            None => {
                self.names.push(name);
                self.sets.push(quotas);
            }
        }
        self
    }

    /// Adds an unnamed tier: it gets the next index and is named by it (`"1"`, `"2"`, ...).
    pub fn with(self, quotas: impl Into<Quotas>) -> Self {
        let name = self.sets.len().to_string();
        self.plan(name, quotas)
    }

    /// The handle of the plan `name` (`"default"` for the default set), if declared.
    pub fn tier(&self, name: &str) -> Option<Tier> {
        self.names.iter().position(|n| n == name).map(Tier)
    }

    /// The quota set of `tier`, if it exists.
    pub fn get(&self, tier: Tier) -> Option<&Quotas> {
        self.sets.get(tier.0)
    }

    /// The plan name of `tier`, if it exists.
    pub fn name(&self, tier: Tier) -> Option<&str> {
        self.names.get(tier.0).map(|n| &**n)
    }

    /// The default set (tier 0).
    pub fn default_set(&self) -> &Quotas {
        &self.sets[0]
    }

    /// Number of tiers (at least 1).
    pub fn len(&self) -> usize {
        self.sets.len()
    }

    /// Always `false`: there is always a default tier.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// All quota sets in index order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &Quotas> {
        self.sets.iter()
    }

    /// All plans in index order, with their names and handles.
    pub fn plans(&self) -> impl ExactSizeIterator<Item = (Tier, &str, &Quotas)> {
        self.names
            .iter()
            .zip(&self.sets)
            .enumerate()
            .map(|(i, (n, q))| (Tier(i), &**n, q))
    }

    /// `new`, reordered so that every plan of `self` keeps its index (tier handles stay
    /// valid across a reload); plans only in `new` come after, in `new`'s order.
    pub(crate) fn successor(&self, new: Tiers) -> Result<Tiers, ReloadError> {
        let mut out = Tiers {
            sets: Vec::with_capacity(new.len()),
            names: Vec::with_capacity(new.len()),
        };
        for name in &self.names {
            let i = new
                .names
                .iter()
                .position(|n| n == name)
                .ok_or_else(|| ReloadError::PlanRemoved(name.to_string()))?;
            out.names.push(name.clone());
            out.sets.push(new.sets[i].clone());
        }
        for (name, set) in new.names.iter().zip(&new.sets) {
            if !out.names.contains(name) {
                out.names.push(name.clone());
                out.sets.push(set.clone());
            }
        }
        Ok(out)
    }

    /// The same plans, each set replaced by `f(set)`.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn map_sets(&self, f: impl Fn(&Quotas) -> Quotas) -> Tiers {
        Tiers {
            sets: self.sets.iter().map(f).collect(),
            names: self.names.clone(),
        }
    }

    /// The quota set of `tier`, or the error a check against an unknown tier gives.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn resolve(&self, tier: Tier) -> Result<&Quotas, CheckError> {
        self.sets.get(tier.0).ok_or(CheckError::UnknownTier {
            tier: tier.0,
            tiers: self.sets.len(),
        })
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

    /// Decides one request of `cost` for `key` against `tier`. An unknown tier is an
    /// error ([`CheckError::UnknownTier`]).
    fn check(&self, key: &K, tier: Tier, cost: u32) -> Check<Self::Future>;

    /// The quota sets this store enforces now.
    fn tiers(&self) -> &Tiers;

    /// The quota sets of configuration generation `generation` (see
    /// [`Outcome::generation`]): what an outcome is re-attached to, so headers describe
    /// the set that decided even if the store was reloaded since. Stores that never
    /// reload keep the default, [`tiers`](Self::tiers).
    fn tiers_of(&self, generation: u32) -> &Tiers {
        let _ = generation;
        self.tiers()
    }

    /// Replaces the quota sets while requests flow, keeping every key's standing (see
    /// [`MemoryStore::reload`](memory::MemoryStore::reload)). Stores that cannot keep the
    /// default, [`ReloadError::Unsupported`].
    fn reload(&self, tiers: Tiers) -> Result<(), ReloadError> {
        let _ = tiers;
        Err(ReloadError::Unsupported)
    }

    /// The quota set of `tier`. Only called with a tier the store decided a request
    /// against (so a known one); the default set otherwise.
    fn quotas(&self, tier: Tier) -> &Quotas {
        let tiers = self.tiers();
        tiers.get(tier).unwrap_or_else(|| tiers.default_set())
    }
}
