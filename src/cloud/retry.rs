//! Retry with exponential back-off, for requests that are safe to repeat.
//! Only errors the caller calls transient are retried; the last error is
//! returned as it was, so the user sees what actually failed.

use std::future::Future;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub initial: Duration,
    pub max_delay: Duration,
    /// Attempts in all, the first included.
    pub attempts: u32,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            initial: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            attempts: 5,
        }
    }
}

impl Retry {
    /// The pause before attempt `n` (1-based; attempt 1 has none).
    pub fn delay(&self, n: u32) -> Duration {
        if n <= 1 {
            return Duration::ZERO;
        }
        let factor = 2u32.saturating_pow(n - 2);
        self.initial.saturating_mul(factor).min(self.max_delay)
    }

    /// Runs `op` until it succeeds, fails with an error `transient` rejects,
    /// or the attempts are used up. `on_retry` hears each error that is
    /// retried, with the attempt that comes next.
    pub async fn run<T, E, F, Fut>(
        &self,
        mut op: F,
        transient: impl Fn(&E) -> bool,
        mut on_retry: impl FnMut(&E, u32),
    ) -> Result<T, E>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut attempt = 1;
        loop {
            match op(attempt).await {
                Ok(v) => return Ok(v),
                Err(e) if attempt < self.attempts && transient(&e) => {
                    attempt += 1;
                    on_retry(&e, attempt);
                    tokio::time::sleep(self.delay(attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn delays_double_up_to_the_cap() {
        let r = Retry::default();
        let d: Vec<u64> = (1..=7).map(|n| r.delay(n).as_millis() as u64).collect();
        assert_eq!(d, [0, 500, 1000, 2000, 4000, 8000, 8000]);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_transient_errors_then_succeeds() {
        let calls = Cell::new(0);
        let started = tokio::time::Instant::now();
        let r: Result<u32, &str> = Retry::default()
            .run(
                |n| {
                    calls.set(calls.get() + 1);
                    async move {
                        if n < 3 {
                            Err("cut")
                        } else {
                            Ok(n)
                        }
                    }
                },
                |_| true,
                |_, _| {},
            )
            .await;
        assert_eq!(r, Ok(3));
        assert_eq!(calls.get(), 3);
        // 0.5 s + 1 s of back-off, in paused time.
        assert_eq!(started.elapsed(), Duration::from_millis(1500));
    }

    #[tokio::test(start_paused = true)]
    async fn stops_at_a_permanent_error_and_after_the_last_attempt() {
        let calls = Cell::new(0);
        let r: Result<(), &str> = Retry::default()
            .run(
                |_| {
                    calls.set(calls.get() + 1);
                    async { Err("409") }
                },
                |e| *e != "409",
                |_, _| {},
            )
            .await;
        assert_eq!((r, calls.get()), (Err("409"), 1));

        calls.set(0);
        let r: Result<(), &str> = Retry::default()
            .run(
                |_| {
                    calls.set(calls.get() + 1);
                    async { Err("503") }
                },
                |_| true,
                |_, _| {},
            )
            .await;
        assert_eq!((r, calls.get()), (Err("503"), 5));
    }
}
