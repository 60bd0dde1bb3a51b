//! Errors of a check (as opposed to a denial, which is a normal [`Decision`](crate::Decision)).

use std::fmt;

/// Why a request could not be decided. A denial is not an error: it is a
/// [`Decision`](crate::Decision) whose [`is_allowed`](crate::Decision::is_allowed) is false.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckError {
    /// The request's cost was 0; every request costs at least 1.
    ZeroCost,
    /// The cost exceeds a quota's burst, so no amount of waiting would admit it
    /// (distinct from "not yet").
    CostExceedsBurst {
        /// The cost asked for.
        cost: u32,
        /// The largest cost the set can ever admit (its smallest burst).
        max_cost: u32,
    },
    /// A keyed limiter is tracking its maximum number of keys and none has expired yet,
    /// so a new key cannot be tracked.
    TooManyKeys {
        /// The configured maximum.
        max_keys: usize,
    },
    /// The tier resolver returned a tier the store does not have: a configuration
    /// error, answered `500` by the middleware (never a silent fall-back to the default
    /// set).
    UnknownTier {
        /// The index asked for.
        tier: usize,
        /// How many tiers the store has.
        tiers: usize,
    },
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroCost => f.write_str("request cost must be at least 1"),
            Self::CostExceedsBurst { cost, max_cost } => write!(
                f,
                "request cost {cost} exceeds the largest burst the quotas allow ({max_cost}); it can never be admitted"
            ),
            Self::TooManyKeys { max_keys } => write!(
                f,
                "the limiter already tracks its maximum of {max_keys} keys"
            ),
            Self::UnknownTier { tier, tiers } => write!(
                f,
                "tier {tier} does not exist (the store has {tiers}); check the tier resolver"
            ),
        }
    }
}

impl std::error::Error for CheckError {}

/// Why a [`Store`](crate::store::Store) could not decide.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// The request itself cannot be decided (bad cost, key cap reached).
    Check(CheckError),
    /// The backing service did not answer within its timeout.
    Timeout,
    /// The backing service failed or is unreachable.
    Unavailable(Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Check(e) => e.fmt(f),
            Self::Timeout => f.write_str("rate-limit store timed out"),
            Self::Unavailable(e) => write!(f, "rate-limit store unavailable: {e}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Check(e) => Some(e),
            Self::Timeout => None,
            Self::Unavailable(e) => Some(&**e),
        }
    }
}

impl From<CheckError> for StoreError {
    fn from(e: CheckError) -> Self {
        Self::Check(e)
    }
}

/// Why a live reconfiguration was refused. The configuration in force stays as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReloadError {
    /// The new configuration lacks a plan the current one has: tier handles given out
    /// for it would dangle. Plans can be added and changed, not removed.
    PlanRemoved(String),
    /// The store has taken its maximum number of configurations
    /// ([`MAX_GENERATIONS`](crate::store::MAX_GENERATIONS)); rebuild it.
    TooManyReloads,
    /// The store cannot change its quotas while running.
    Unsupported,
}

impl fmt::Display for ReloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PlanRemoved(p) => write!(
                f,
                "plan {p:?} is missing from the new configuration; plans can be added or changed, not removed"
            ),
            Self::TooManyReloads => {
                f.write_str("the store has reached its maximum number of reloads")
            }
            Self::Unsupported => f.write_str("this store cannot change its quotas while running"),
        }
    }
}

impl std::error::Error for ReloadError {}
