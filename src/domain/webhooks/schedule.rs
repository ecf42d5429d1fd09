//! When to try again, and what an answer means.
//!
//! The platform guide's schedule: the first attempt at once, then after
//! 1 min, 5 min, 15 min and 1 h; the delivery is marked failed after the
//! fifth failed attempt. Each delay gets ±10 % jitter, and a receiver's
//! `Retry-After` lengthens a delay, up to a bound. Operators can lengthen the
//! schedule (`WAGATE_WEBHOOKS_RETRY_SCHEDULE=1m,5m,15m,1h,6h,12h,1d,1d`, Svix
//! style over days); attempts = delays + 1.
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

/// The documented delays after the 1st, 2nd, 3rd and 4th failed attempts.
pub const DEFAULT_SCHEDULE: [Duration; 4] = [
    Duration::from_secs(60),
    Duration::from_secs(5 * 60),
    Duration::from_secs(15 * 60),
    Duration::from_secs(60 * 60),
];

/// Jitter applied to every delay: uniform in [1 - JITTER, 1 + JITTER].
pub const JITTER: f64 = 0.1;

/// What one attempt's result means for the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx.
    Success,
    /// Network error, timeout, 408, 425, 429, 5xx.
    Retry,
    /// 3xx (not followed) or any other 4xx.
    Final,
    /// 410 Gone: final, and the endpoint is deactivated.
    Gone,
}

/// The verdict on an HTTP status (None: no response at all).
pub fn verdict(status: Option<u16>) -> Verdict {
    match status {
        None => Verdict::Retry,
        Some(s) if (200..300).contains(&s) => Verdict::Success,
        Some(410) => Verdict::Gone,
        Some(408 | 425 | 429) => Verdict::Retry,
        Some(s) if s >= 500 => Verdict::Retry,
        Some(_) => Verdict::Final,
    }
}

/// The retry policy in force.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule {
    /// Delay after the n-th failed attempt (index n-1).
    pub delays: Vec<Duration>,
    /// The longest a `Retry-After` may push a retry out.
    pub retry_after_max: Duration,
    /// Fraction of jitter (0.1 = ±10 %).
    pub jitter: f64,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        Self {
            delays: DEFAULT_SCHEDULE.to_vec(),
            retry_after_max: Duration::from_secs(60 * 60),
            jitter: JITTER,
        }
    }
}

impl RetrySchedule {
    /// Attempts in total: the first plus one per delay.
    pub fn max_attempts(&self) -> i32 {
        i32::try_from(self.delays.len()).unwrap_or(i32::MAX - 1) + 1
    }

    /// The scheduled delay after failed attempt `attempt` (1-based), before
    /// jitter; None when no attempt is left.
    pub fn base_delay(&self, attempt: i32) -> Option<Duration> {
        let idx = usize::try_from(attempt.checked_sub(1)?).ok()?;
        self.delays.get(idx).copied()
    }

    /// When to try again after failed attempt `attempt`, or None when that
    /// was the last. A `Retry-After` longer than the scheduled delay wins, up
    /// to `retry_after_max`; a shorter one never makes a retry earlier.
    pub fn next_attempt(
        &self,
        attempt: i32,
        retry_after: Option<Duration>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let base = self.base_delay(attempt)?;
        let factor = if self.jitter > 0.0 {
            rand::rng().random_range((1.0 - self.jitter)..=(1.0 + self.jitter))
        } else {
            1.0
        };
        let mut delay = base.mul_f64(factor);
        if let Some(asked) = retry_after {
            delay = delay.max(asked.min(self.retry_after_max.max(base)));
        }
        Some(now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX))
    }
}

/// `Retry-After`: delay seconds, or an HTTP date.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        // delay-seconds; a number past u64 is a very long wait all the
        // same (capped by the schedule), not no answer at all.
        return Some(Duration::from_secs(v.parse::<u64>().unwrap_or(u64::MAX)));
    }
    let at = DateTime::parse_from_rfc2822(v).ok()?.with_timezone(&Utc);
    (at - now).to_std().ok()
}

/// Parses a schedule such as `1m,5m,15m,1h` (units ms, s, m, h, d; a bare
/// number is seconds).
pub fn parse_schedule(text: &str) -> Result<Vec<Duration>, String> {
    let delays = text
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(parse_duration)
        .collect::<Result<Vec<_>, _>>()?;
    if delays.is_empty() {
        return Err("the retry schedule needs at least one delay".into());
    }
    Ok(delays)
}

/// `250ms`, `30s`, `5m`, `1h`, `2d`, or seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len()));
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{t:?} is not a duration (use e.g. 30s, 5m, 1h, 1d)"))?;
    if !n.is_finite() || n < 0.0 {
        return Err(format!("{t:?} is not a duration"));
    }
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {t:?} (use ms, s, m, h or d)"
            ));
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{t:?} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_schedule() {
        let s = RetrySchedule::default();
        assert_eq!(s.max_attempts(), 5);
        let mins: Vec<u64> = s.delays.iter().map(|d| d.as_secs() / 60).collect();
        assert_eq!(mins, [1, 5, 15, 60]);
        assert_eq!(s.base_delay(1), Some(Duration::from_secs(60)));
        assert_eq!(s.base_delay(4), Some(Duration::from_secs(3600)));
        assert_eq!(s.base_delay(5), None, "failed after the fifth attempt");
        assert_eq!(s.base_delay(0), None);
        let now = Utc::now();
        for attempt in 1..=4 {
            let base = s.base_delay(attempt).expect("delay").as_secs_f64();
            for _ in 0..50 {
                let at = s.next_attempt(attempt, None, now).expect("retry");
                let d = (at - now).num_milliseconds() as f64 / 1000.0;
                assert!(
                    d >= base * 0.9 - 0.01 && d <= base * 1.1 + 0.01,
                    "{attempt}: {d}"
                );
            }
        }
        assert_eq!(s.next_attempt(5, None, now), None);
    }

    #[test]
    fn retry_after_lengthens_within_bounds() {
        let s = RetrySchedule {
            jitter: 0.0,
            ..RetrySchedule::default()
        };
        let now = Utc::now();
        let delay = |ra: Option<u64>| {
            (s.next_attempt(1, ra.map(Duration::from_secs), now)
                .expect("retry")
                - now)
                .num_seconds()
        };
        assert_eq!(delay(None), 60);
        assert_eq!(delay(Some(10)), 60, "never earlier than the schedule");
        assert_eq!(delay(Some(600)), 600);
        assert_eq!(delay(Some(86_400)), 3600, "capped at retry_after_max");
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        let date = (now + chrono::Duration::seconds(90)).to_rfc2822();
        let parsed = parse_retry_after(&date, now).expect("date").as_secs();
        assert!((88..=90).contains(&parsed), "{parsed}");
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(
            parse_retry_after("999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX)),
            "past u64: the longest wait"
        );
    }

    #[test]
    fn verdicts() {
        assert_eq!(verdict(Some(200)), Verdict::Success);
        assert_eq!(verdict(Some(204)), Verdict::Success);
        assert_eq!(verdict(Some(299)), Verdict::Success);
        for retry in [
            None,
            Some(408),
            Some(425),
            Some(429),
            Some(500),
            Some(502),
            Some(503),
            Some(504),
            Some(599),
        ] {
            assert_eq!(verdict(retry), Verdict::Retry, "{retry:?}");
        }
        for fin in [
            Some(301),
            Some(302),
            Some(307),
            Some(400),
            Some(401),
            Some(403),
            Some(404),
            Some(413),
            Some(422),
        ] {
            assert_eq!(verdict(fin), Verdict::Final, "{fin:?}");
        }
        assert_eq!(verdict(Some(410)), Verdict::Gone);
    }

    #[test]
    fn schedules_parse() {
        assert_eq!(
            parse_schedule("1m,5m,15m,1h").expect("parses"),
            DEFAULT_SCHEDULE.to_vec()
        );
        assert_eq!(
            parse_schedule("250ms, 2s,3").expect("parses"),
            vec![
                Duration::from_millis(250),
                Duration::from_secs(2),
                Duration::from_secs(3)
            ]
        );
        assert_eq!(
            parse_schedule("1m,5m,15m,1h,6h,12h,1d,1d")
                .expect("svix-like")
                .len(),
            8
        );
        assert!(parse_schedule("").is_err());
        assert!(parse_schedule("1w").is_err());
        assert!(parse_schedule("-1s").is_err());
        assert!(parse_schedule("fast").is_err());
    }
}
