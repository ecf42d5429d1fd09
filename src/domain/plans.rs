//! Plans and what they allow. BASIC is the free plan; no quota figures are
//! published for the product wagate reproduces, so these are wagate's own
//! (documented in the README) and live in one table here.
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    Basic,
    Pro,
    Ultra,
    Mega,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanLimits {
    pub monthly_messages: i64,
    /// Largest bulk request (never above the API's hard cap of 1,000).
    pub bulk_max: i32,
    pub requests_per_minute: i32,
}

/// The API's hard cap on one bulk request, whatever the plan.
pub const BULK_HARD_CAP: i32 = 1_000;

impl Plan {
    pub const ALL: [Plan; 4] = [Plan::Basic, Plan::Pro, Plan::Ultra, Plan::Mega];

    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Basic => "basic",
            Plan::Pro => "pro",
            Plan::Ultra => "ultra",
            Plan::Mega => "mega",
        }
    }

    pub fn parse(s: &str) -> Option<Plan> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
    }

    pub fn limits(self) -> PlanLimits {
        let (monthly_messages, bulk_max, requests_per_minute) = match self {
            Plan::Basic => (1_000, 0, 60),
            Plan::Pro => (50_000, 100, 600),
            Plan::Ultra => (250_000, 500, 1_200),
            Plan::Mega => (1_000_000, BULK_HARD_CAP, 3_000),
        };
        PlanLimits {
            monthly_messages,
            bulk_max: bulk_max.min(BULK_HARD_CAP),
            requests_per_minute,
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_parse_and_cap_bulk() {
        for p in Plan::ALL {
            assert_eq!(Plan::parse(p.as_str()), Some(p));
            assert!(p.limits().bulk_max <= BULK_HARD_CAP);
        }
        assert_eq!(Plan::parse("MEGA"), Some(Plan::Mega));
        assert_eq!(Plan::parse("free"), None);
    }
}
