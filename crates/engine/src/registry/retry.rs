//! Retries: the policy (bounded attempts, exponential backoff with jitter, `Retry-After` honoured, capped) and
//! [`retry`], the one loop that applies it, for requests, token fetches, pings and whole blob uploads alike.

use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts including the first (1 = no retries).
    pub max_attempts: u32,
    /// Delay before the first retry; doubled for each further one.
    pub base_delay: Duration,
    /// Cap on the backoff delay.
    pub max_delay: Duration,
    /// Cap on a server's `Retry-After`.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(15),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Tiny delays, for tests.
    pub fn fast(max_attempts: u32) -> Self {
        RetryPolicy {
            max_attempts,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            max_retry_after: Duration::from_millis(5),
        }
    }

    /// The delay before retry number `retry` (0 for the first retry): `base * 2^retry` capped at `max_delay`,
    /// then scaled by a random factor in [0.5, 1] so that parallel uploads do not retry in lockstep.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self.base_delay.saturating_mul(1u32 << retry.min(20));
        let capped = exp.min(self.max_delay);
        let r = (random_u64() % 1000) as f64 / 1000.0;
        capped.mul_f64(0.5 + r / 2.0)
    }

    /// The delay before the next attempt: the server's `Retry-After` when given (capped), else the backoff.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(d) => d.min(self.max_retry_after),
            None => self.backoff(retry),
        }
    }
}

/// What one attempt's outcome calls for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// It is final (a success, or a failure that trying again would not mend).
    Done,
    /// Try again after the server's `Retry-After` when it gave one (capped at `max_retry_after`), else after the
    /// backoff.
    Retry(Option<Duration>),
}

/// Run `attempt` up to `policy.max_attempts` times and return the last outcome. After each attempt but the last,
/// `judge` is given the outcome and the number of the retry that would follow (0 for the first): on
/// [`Verdict::Retry`] the outcome is dropped (a response's connection goes back to the pool) and the loop sleeps
/// before the next attempt. `judge` is where a retry is logged, so it only hears of attempts that can be retried.
pub(crate) fn retry<T>(
    policy: &RetryPolicy,
    mut attempt: impl FnMut() -> T,
    mut judge: impl FnMut(&T, u32) -> Verdict,
) -> T {
    let mut retry = 0;
    loop {
        let outcome = attempt();
        if retry + 1 >= policy.max_attempts {
            return outcome;
        }
        let delay = match judge(&outcome, retry) {
            Verdict::Done => return outcome,
            Verdict::Retry(after) => policy.delay(retry, after),
        };
        drop(outcome);
        std::thread::sleep(delay);
        retry += 1;
    }
}

fn random_u64() -> u64 {
    // A randomly keyed hasher from std: good enough for jitter, no RNG dependency.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// `Retry-After`: delay-seconds or an HTTP-date (IMF-fixdate, e.g. `Wed, 21 Oct 2015 07:28:00 GMT`) relative to
/// `now`. A date in the past means "now".
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = parse_http_date(v)?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// IMF-fixdate only (what RFC 9110 requires senders to use).
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    let rest = s.split_once(", ")?.1;
    let parts: Vec<&str> = rest.split(' ').collect();
    if parts.len() != 5 || parts[4] != "GMT" {
        return None;
    }
    let day: u32 = parts[0].parse().ok()?;
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == parts[1])? as u32 + 1;
    let year: i64 = parts[2].parse().ok()?;
    let hms: Vec<u64> = parts[3]
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    if hms.len() != 3 || hms[0] > 23 || hms[1] > 59 || hms[2] > 60 || !(1..=31).contains(&day) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days.checked_mul(86400)? + (hms[0] * 3600 + hms[1] * 60 + hms[2]) as i64;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(1_445_412_480); // Wed, 21 Oct 2015 07:28:00 GMT
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(UNIX_EPOCH + Duration::from_secs(784_111_777))
        );
        assert_eq!(
            parse_http_date("Thu, 29 Feb 2024 00:00:00 GMT"),
            Some(UNIX_EPOCH + Duration::from_secs(1_709_164_800))
        );
        assert_eq!(parse_http_date("Sun, 06 Foo 1994 08:49:37 GMT"), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::default();
        for i in 0..10 {
            let d = p.backoff(i);
            let full = p.base_delay.saturating_mul(1 << i).min(p.max_delay);
            assert!(d <= full && d >= full / 2, "{i}: {d:?}");
        }
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(3600))),
            p.max_retry_after
        );
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn retry_stops_at_done_or_the_last_attempt() {
        let p = RetryPolicy::fast(3);
        let mut n = 0;
        let mut judged = Vec::new();
        let last = retry(
            &p,
            || {
                n += 1;
                n
            },
            |o, r| {
                judged.push((*o, r));
                Verdict::Retry(Some(Duration::ZERO))
            },
        );
        assert_eq!((last, judged), (3, vec![(1, 0), (2, 1)]));
        let mut n = 0;
        let done = retry(
            &p,
            || {
                n += 1;
                n
            },
            |o, _| {
                if *o == 2 {
                    Verdict::Done
                } else {
                    Verdict::Retry(None)
                }
            },
        );
        assert_eq!(done, 2);
        let mut n = 0;
        let once = retry(
            &RetryPolicy::fast(1),
            || {
                n += 1;
                n
            },
            |_, _| panic!("no retry is possible"),
        );
        assert_eq!(once, 1);
    }
}
