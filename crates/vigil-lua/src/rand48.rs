//! `math.random` as Redis makes it: the 48-bit linear congruential generator of `drand48`
//! (Redis' `rand.c`), one sequence for the whole process, so the numbers a script draws are
//! the same on every platform and after every restart at the same point.

use std::sync::atomic::{AtomicU64, Ordering};

const A: u64 = 0x5_DEEC_E66D;
const C: u64 = 0xB;
const MASK: u64 = (1 << 48) - 1;
/// The state `rand.c` starts from (its `X2 X1 X0`).
const INITIAL: u64 = 0x1234_ABCD_330E;
/// `REDIS_LRAND48_MAX`.
const MAX: u64 = i32::MAX as u64;

/// The generator's state, shared by every script of the process.
#[derive(Debug)]
pub struct Rand48(AtomicU64);

impl Default for Rand48 {
    fn default() -> Self {
        Rand48(AtomicU64::new(INITIAL))
    }
}

impl Rand48 {
    /// `redisLrand48`: the next 31-bit value.
    pub fn next(&self) -> u64 {
        let x = (self
            .0
            .load(Ordering::Relaxed)
            .wrapping_mul(A)
            .wrapping_add(C))
            & MASK;
        self.0.store(x, Ordering::Relaxed);
        x >> 17
    }

    /// `redisSrand48`.
    pub fn seed(&self, seed: i32) {
        self.0.store(
            (((seed as u32) as u64) << 16 | 0x330E) & MASK,
            Ordering::Relaxed,
        );
    }

    /// A number in [0, 1), as Redis' `math_random` draws it.
    pub fn unit(&self) -> f64 {
        (self.next() % MAX) as f64 / MAX as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first draws of a fresh Redis 7.0 (`tostring(math.random())` on a new server).
    #[test]
    fn matches_a_fresh_redis() {
        let r = Rand48::default();
        assert_eq!(format!("{:.14}", r.unit()), "0.39646477363839");
        assert_eq!(format!("{:.14}", r.unit()), "0.84048536971234");
    }
}
