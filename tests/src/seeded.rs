//! A seeded random generator for the differential suites' random sequences: the same seed
//! gives the same commands on every machine and every run (xorshift64*, no crate whose
//! algorithm could change under us).

/// The generator.
pub struct Rng(pub u64);

impl Rng {
    /// Next 64 random bits.
    pub fn bits(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.bits() % n
    }

    /// Uniform in `[lo, hi)`.
    pub fn float(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (self.bits() >> 11) as f64 / (1u64 << 53) as f64 * (hi - lo)
    }

    /// One of `items`.
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}
