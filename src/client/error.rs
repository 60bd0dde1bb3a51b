//! Errors of the client side.

use std::fmt;
use std::time::Duration;

use crate::CheckError;

/// Why the pacer did not send a request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PaceError {
    /// The quotas would admit the request only after `wait`, longer than the configured
    /// `max_wait`. Nothing was booked, so failing costs other callers nothing.
    WouldWait {
        /// How long the request would have waited.
        wait: Duration,
        /// The configured limit.
        max_wait: Duration,
    },
    /// The request's cost can never be admitted (zero, or above the smallest burst).
    Cost(CheckError),
}

impl fmt::Display for PaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WouldWait { wait, max_wait } => write!(
                f,
                "rate limit: the request would wait {wait:?}, longer than the maximum of {max_wait:?}"
            ),
            Self::Cost(e) => write!(f, "rate limit: {e}"),
        }
    }
}

impl std::error::Error for PaceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Cost(e) => Some(e),
            Self::WouldWait { .. } => None,
        }
    }
}
