//! The per-tier header plan: each tier's header values rendered once, applied to every
//! response of that tier.

use std::sync::Arc;

use http::HeaderMap;

use super::{HeaderStyle, PreparedHeaders};
use crate::decision::{Decision, Outcome};
use crate::quota::Quotas;
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

    /// The tier's quota set and its prepared headers (an unknown tier falls back to the
    /// default set, as stores do).
    #[inline]
    fn tier(&self, tier: Tier) -> (&Quotas, &PreparedHeaders) {
        match (self.tiers.get(tier), self.prepared.get(tier.0)) {
            (Some(quotas), Some(prepared)) => (quotas, prepared),
            _ => (self.tiers.default_set(), &self.prepared[0]),
        }
    }

    /// Adds the headers of `outcome`, decided against `tier`.
    #[inline]
    pub(crate) fn apply(&self, outcome: Outcome, tier: Tier, headers: &mut HeaderMap) {
        let (quotas, prepared) = self.tier(tier);
        // `prepared` was rendered from `quotas` itself: no need to compare the sets.
        prepared.apply_prepared(&outcome.attach(quotas), headers);
    }

    /// Adds the headers of a decision already in hand, made by a store against its own
    /// copy of the tier's quotas (compared before the prepared values are trusted).
    pub(crate) fn apply_decision(
        &self,
        decision: &Decision<'_>,
        tier: Tier,
        headers: &mut HeaderMap,
    ) {
        let (quotas, prepared) = self.tier(tier);
        if std::ptr::eq(quotas, decision.quotas()) {
            prepared.apply_prepared(decision, headers);
        } else {
            prepared.apply(decision, headers);
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
