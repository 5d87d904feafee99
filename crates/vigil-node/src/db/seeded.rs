//! A tiny fixed-seed generator (xorshift) for the unit tests that compare a value's compact and
//! indexed forms against a model: the same sequence on every run.

/// The generator.
pub struct Rng(pub u64);

impl Rng {
    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}
