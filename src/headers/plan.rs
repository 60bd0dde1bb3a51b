//! The per-tier header plan: each tier's header values rendered once, applied to every
//! response of that tier.

use std::sync::Arc;

use http::HeaderMap;

use super::{HeaderStyle, PreparedHeaders};
use crate::decision::{Decision, Outcome};
use crate::store::{Tier, Tiers};

/// The quota tiers with their header values pre-rendered, shared by the layer and the
/// futures of admitted requests.
#[derive(Debug)]
pub(crate) struct HeaderPlan {
    pub(crate) tiers: Tiers,
    prepared: Vec<PreparedHeaders>,
}

impl HeaderPlan {
    pub(crate) fn new(tiers: Tiers, style: HeaderStyle) -> Self {
        let prepared = tiers.iter().map(|q| style.prepare(q)).collect();
        HeaderPlan { tiers, prepared }
    }

    /// Adds the headers of `outcome`, decided against `tier`.
    pub(crate) fn apply(&self, outcome: Outcome, tier: Tier, headers: &mut HeaderMap) {
        let quotas = self
            .tiers
            .get(tier)
            .unwrap_or_else(|| self.tiers.default_set());
        self.apply_decision(&outcome.decision(quotas), tier, headers);
    }

    /// Adds the headers of a decision already in hand (an unknown tier falls back to
    /// the default set, as stores do).
    pub(crate) fn apply_decision(
        &self,
        decision: &Decision<'_>,
        tier: Tier,
        headers: &mut HeaderMap,
    ) {
        let prepared = self.prepared.get(tier.0).unwrap_or(&self.prepared[0]);
        prepared.apply(decision, headers);
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
