//! Headroom: pace a little inside the server's quotas.

use crate::{Quota, Quotas};

/// `quotas` with every burst lowered by `units` (to at least 1), rates unchanged.
///
/// For [`PacingMode::Gcra`](super::PacingMode::Gcra), which paces by burst and rate.
/// The log modes count `limit` per window and absorb jitter with a margin in time
/// instead ([`default_margin`](super::default_margin)), which costs far less: one unit
/// of headroom is 25% of Claid's 4/s burst, the default margin 2%.
///
/// Pacing to a server's exact quotas leaves it no slack: its clock is not ours, a coarse
/// clock can read a few milliseconds behind, and requests can be reordered on the way,
/// so a request sent at the very start of its slot may look early and draw a 429. One
/// unit of headroom absorbs such jitter up to one emission interval (250 ms for Claid's
/// 4/s) at the cost of a burst one request smaller; the long-run rate is the same.
///
/// ```
/// use tower_ratelimit::{Quotas, client::with_headroom};
/// let q = with_headroom(&Quotas::claid(), 1);
/// assert_eq!(q.get(0).unwrap().burst(), 3);
/// assert_eq!(q.get(1).unwrap().burst(), 119);
/// assert_eq!(q.get(0).unwrap().emission_interval(), Quotas::claid().get(0).unwrap().emission_interval());
/// ```
pub fn with_headroom(quotas: &Quotas, units: u32) -> Quotas {
    let lowered: Vec<Quota> = quotas
        .iter()
        .map(|q| {
            let burst = q.burst().saturating_sub(units).max(1);
            // A smaller burst is always valid; keep the quota as it was if not.
            q.clone().with_burst(burst).unwrap_or_else(|_| q.clone())
        })
        .collect();
    // Smaller bursts pack at least as tightly, so the set always fits.
    Quotas::new(lowered).unwrap_or_else(|_| quotas.clone())
}
