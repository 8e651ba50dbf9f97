//! The wall clock for [`SystemClock`](crate::SystemClock), read through the CPU's time-stamp
//! counter (`quanta`): reading the system clock (`clock_gettime`) was a third of an in-memory
//! rate-limit check. The counter is anchored to the system clock and the anchor is renewed
//! every [`REANCHOR_NS`], so the time read never strays from the system clock by more than the
//! counter's drift over that interval (a few microseconds), and a step of the system clock
//! (NTP, an operator) shows within it.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering, fence};
use std::time::{SystemTime, UNIX_EPOCH};

/// How long an anchor is used before the system clock is read again.
pub(crate) const REANCHOR_NS: u64 = 100_000_000;

/// A reading of the system clock and of the counter at the same moment, behind a sequence
/// lock: `seq` is odd while a thread renews them.
struct Anchor {
    counter: quanta::Clock,
    seq: AtomicU64,
    wall_us: AtomicI64,
    raw: AtomicU64,
}

static ANCHOR: OnceLock<Anchor> = OnceLock::new();

/// The system clock in microseconds since the Unix epoch (0 before it).
pub(crate) fn system_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Now, in microseconds since the Unix epoch: the anchor plus the counter's time since it.
pub(crate) fn now_micros() -> i64 {
    let a = ANCHOR.get_or_init(|| {
        let counter = quanta::Clock::new();
        let raw = counter.raw();
        Anchor {
            counter,
            seq: AtomicU64::new(0),
            wall_us: AtomicI64::new(system_micros()),
            raw: AtomicU64::new(raw),
        }
    });
    let seq = a.seq.load(Ordering::Acquire);
    if seq & 1 == 1 {
        // Being renewed right now: the system clock itself.
        return system_micros();
    }
    let wall = a.wall_us.load(Ordering::Relaxed);
    let raw = a.raw.load(Ordering::Relaxed);
    fence(Ordering::Acquire);
    if a.seq.load(Ordering::Relaxed) != seq {
        return system_micros();
    }
    let elapsed = a.counter.delta_as_nanos(raw, a.counter.raw());
    if elapsed < REANCHOR_NS {
        return wall + (elapsed / 1_000) as i64;
    }
    // Stale: one caller renews it, the others read the system clock meanwhile.
    if a.seq
        .compare_exchange(seq, seq + 1, Ordering::AcqRel, Ordering::Relaxed)
        .is_err()
    {
        return system_micros();
    }
    fence(Ordering::Release);
    let raw = a.counter.raw();
    let wall = system_micros();
    a.wall_us.store(wall, Ordering::Relaxed);
    a.raw.store(raw, Ordering::Relaxed);
    a.seq.store(seq + 2, Ordering::Release);
    wall
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Read beside the system clock for three anchor intervals, from two threads at once:
    /// never more than 2 ms apart (the counter drifts by microseconds; the margin is for a
    /// thread descheduled between the two reads on a loaded machine), and mostly within
    /// 50 µs.
    #[test]
    fn stays_with_the_system_clock_across_renewals() {
        let worst = std::thread::scope(|s| {
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        let mut far = 0u32;
                        let mut worst = 0i64;
                        let mut reads = 0u32;
                        let end = std::time::Instant::now() + Duration::from_nanos(REANCHOR_NS * 3);
                        while std::time::Instant::now() < end {
                            let before = system_micros();
                            let ours = now_micros();
                            let after = system_micros();
                            let off = if ours < before {
                                before - ours
                            } else if ours > after {
                                ours - after
                            } else {
                                0
                            };
                            worst = worst.max(off);
                            far += u32::from(off > 50);
                            reads += 1;
                            std::thread::sleep(Duration::from_micros(200));
                        }
                        assert!(
                            far * 20 < reads,
                            "{far} of {reads} reads more than 50 µs off"
                        );
                        worst
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().unwrap())
                .max()
                .unwrap()
        });
        assert!(worst <= 2_000, "{worst} µs off the system clock");
    }
}
