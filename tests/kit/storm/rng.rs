//! A seeded random source for storms (kill instants, signal mixes),
//! reproducible by seed: every run prints `CRASH_SEED=...`, and setting it
//! replays that run's choices.

use crate::kit::journal::signal_line;

/// xorshift64*: enough randomness for kill instants.
pub struct Rng(u64);

impl Rng {
    /// Seeded from `CRASH_SEED`, or from the clock (and said on stderr).
    pub fn from_env() -> Self {
        let seed = std::env::var("CRASH_SEED")
            .ok()
            .and_then(|seed| seed.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("CRASH_SEED={seed}");
        Rng(seed)
    }

    /// A number in `0..bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound
    }

    /// A valid signal `id-{index}`: BTC or ETH, either side, 1 to 3, with a
    /// price three times in four.
    pub fn signal(&mut self, index: usize) -> String {
        let symbol = ["BTC", "ETH"][self.below(2) as usize];
        let side = ["buy", "sell"][self.below(2) as usize];
        let qty = (1 + self.below(3)) as f64;
        let price = (self.below(4) != 0).then(|| (90 + self.below(20)) as f64);
        signal_line(&format!("id-{index}"), symbol, side, qty, price)
    }
}
