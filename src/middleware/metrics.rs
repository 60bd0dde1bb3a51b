//! Decisions exported through the [`metrics`] facade (feature `metrics`).
//!
//! Handles are registered once per plan and policy (per configuration generation), so a
//! request costs an array lookup and an increment, never a label allocation; labels are
//! the layer's name, the plan and the policy, never the client key. Install the
//! recorder (e.g. `metrics-exporter-prometheus`) before building the layer: handles
//! taken before that are no-ops.

use std::borrow::Cow;

use metrics::{Counter, Label, counter};

use super::event::Verdict;
use crate::decision::Decision;
use crate::store::generations::Generations;
use crate::store::{Tier, Tiers};

/// Counter of decisions: `layer`, `plan`, `policy`, `verdict`.
pub(crate) const REQUESTS: &str = "tower_ratelimit_requests_total";
/// Counter of admissions that left at most a fifth of the binding policy's burst.
pub(crate) const NEAR_LIMIT: &str = "tower_ratelimit_near_limit_total";

/// `verdict` label values of decisions with a quota state, in index order.
const DECIDED: [&str; 3] = ["admitted", "denied", "shadow_denied"];

struct TierHandles {
    /// Per policy: admitted, denied, shadow-denied.
    decided: Vec<[Counter; 3]>,
    /// Per policy.
    near_limit: Vec<Counter>,
    store_error: Counter,
}

struct GenHandles {
    tiers: Vec<TierHandles>,
    /// Plan "unknown": store errors for a tier the store does not have.
    unknown_tier: Counter,
}

/// The layer's metric handles.
pub(crate) struct Metrics {
    layer: Option<Cow<'static, str>>,
    gens: Generations<GenHandles>,
    /// Plan and policy "none": exempt requests and requests without a key.
    exempt: Counter,
    key_missing: Counter,
}

impl Metrics {
    pub(crate) fn new(layer: Option<Cow<'static, str>>, tiers: &Tiers) -> Self {
        let first = Self::handles(&layer, tiers);
        let none =
            |verdict: &'static str| counter!(REQUESTS, labels(&layer, "none", "none", verdict));
        Metrics {
            exempt: none("exempt"),
            key_missing: none("key_missing"),
            gens: Generations::new(first),
            layer,
        }
    }

    fn handles(layer: &Option<Cow<'static, str>>, tiers: &Tiers) -> GenHandles {
        let tiers = tiers
            .plans()
            .map(|(_, plan, quotas)| TierHandles {
                decided: quotas
                    .iter()
                    .map(|q| DECIDED.map(|v| counter!(REQUESTS, labels(layer, plan, q.name(), v))))
                    .collect(),
                near_limit: quotas
                    .iter()
                    .map(|q| {
                        let mut l = labels(layer, plan, q.name(), "");
                        l.pop();
                        counter!(NEAR_LIMIT, l)
                    })
                    .collect(),
                store_error: counter!(REQUESTS, labels(layer, plan, "none", "store_error")),
            })
            .collect();
        GenHandles {
            tiers,
            unknown_tier: counter!(REQUESTS, labels(layer, "unknown", "none", "store_error")),
        }
    }

    /// Counts one decision; `tiers` gives generation `generation`'s sets the first time
    /// it is seen.
    pub(crate) fn record<'t>(
        &self,
        verdict: Verdict,
        tier: Tier,
        decision: Option<&Decision<'_>>,
        tiers: impl FnOnce(u32) -> &'t Tiers,
    ) {
        let g = decision.map_or(0, |d| d.outcome().generation());
        let Some(h) = self
            .gens
            .get_or_init(g, || Self::handles(&self.layer, tiers(g)))
        else {
            return;
        };
        let index = match verdict {
            Verdict::Admitted => 0,
            Verdict::Denied => 1,
            Verdict::ShadowDenied => 2,
            Verdict::Exempt => return self.exempt.increment(1),
            Verdict::KeyMissing => return self.key_missing.increment(1),
            _ => {
                return match h.tiers.get(tier.0) {
                    Some(t) => t.store_error.increment(1),
                    None => h.unknown_tier.increment(1),
                };
            }
        };
        let (Some(t), Some(d)) = (h.tiers.get(tier.0), decision) else {
            return;
        };
        let binding = d.binding();
        let policy = binding.index();
        if let Some(c) = t.decided.get(policy) {
            c[index].increment(1);
        }
        // As envoy's ratelimit reports "near limit": at least 80% of the burst used.
        if index == 0
            && binding.remaining() * 5 <= u64::from(binding.quota().burst())
            && let Some(c) = t.near_limit.get(policy)
        {
            c.increment(1);
        }
    }
}

fn labels(
    layer: &Option<Cow<'static, str>>,
    plan: &str,
    policy: &str,
    verdict: &'static str,
) -> Vec<Label> {
    let mut l = Vec::with_capacity(4);
    if let Some(name) = layer {
        l.push(Label::new("layer", name.clone()));
    }
    l.push(Label::new("plan", plan.to_owned()));
    l.push(Label::new("policy", policy.to_owned()));
    l.push(Label::new("verdict", verdict));
    l
}
