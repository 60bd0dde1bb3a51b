//! The per-tier header plan: each tier's header values rendered once per configuration
//! generation, applied to every response of that tier.

use std::sync::Arc;

use http::HeaderMap;

use super::{HeaderStyle, PreparedHeaders};
use crate::decision::Outcome;
use crate::store::generations::Generations;
use crate::store::{Tier, Tiers};

/// One generation's tiers with their header values pre-rendered.
#[derive(Debug)]
struct GenPlan {
    tiers: Tiers,
    prepared: Vec<PreparedHeaders>,
}

impl GenPlan {
    fn new(tiers: Tiers, style: HeaderStyle) -> Self {
        let prepared = tiers.iter().map(|q| style.prepare(q)).collect();
        GenPlan { tiers, prepared }
    }
}

/// The quota tiers with their header values pre-rendered, per configuration generation of
/// the store (a decision's headers describe the set that decided it, also across a
/// reload), shared by the layer and the futures of admitted requests.
pub(crate) struct HeaderPlan {
    style: HeaderStyle,
    gens: Generations<GenPlan>,
}

impl std::fmt::Debug for HeaderPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderPlan")
            .field("style", &self.style)
            .finish_non_exhaustive()
    }
}

impl HeaderPlan {
    /// A plan whose generation 0 is `tiers`.
    pub(crate) fn new(tiers: Tiers, style: HeaderStyle) -> Self {
        HeaderPlan {
            style,
            gens: Generations::new(GenPlan::new(tiers, style)),
        }
    }

    /// Makes sure generation `g` is prepared, from its tiers (asked for only the first
    /// time); `false` past the last generation a store can have.
    #[inline]
    pub(crate) fn prepare(&self, g: u32, tiers: impl FnOnce() -> Tiers) -> bool {
        self.gens
            .get_or_init(g, || GenPlan::new(tiers(), self.style))
            .is_some()
    }

    /// Adds the headers of `outcome`, decided against `tier` (its generation prepared).
    #[inline]
    pub(crate) fn apply(&self, outcome: Outcome, tier: Tier, headers: &mut HeaderMap) {
        let Some(plan) = self.gens.get(outcome.generation()) else {
            return;
        };
        if let (Some(quotas), Some(prepared)) = (plan.tiers.get(tier), plan.prepared.get(tier.0)) {
            // `prepared` was rendered from `quotas` itself: no need to compare the sets.
            prepared.apply_prepared(&outcome.attach(quotas), headers);
        }
    }
}

/// What an admitted response still needs: the decision's headers, added once the inner
/// service has answered. Holds plain numbers and a shared handle, never an allocation.
#[derive(Debug)]
pub(crate) struct PendingHeaders {
    outcome: Outcome,
    tier: Tier,
    plan: Arc<HeaderPlan>,
}

impl PendingHeaders {
    pub(crate) fn new(outcome: Outcome, tier: Tier, plan: Arc<HeaderPlan>) -> Self {
        PendingHeaders {
            outcome,
            tier,
            plan,
        }
    }

    /// Adds the headers to an admitted response.
    pub(crate) fn apply(&self, headers: &mut HeaderMap) {
        self.plan.apply(self.outcome, self.tier, headers);
    }
}
