//! Deterministic random numbers and maths: the same bits on every platform.
//!
//! Everything that must replay bit for bit draws from here: the data generator
//! ([`crate::feed::gen`]), the backtester's latency and queue models
//! ([`crate::backtest::latency`], [`crate::backtest::queue`]) and the A-S Monte Carlo
//! ([`crate::assim`]). [`Rng`] is xoshiro256** seeded by SplitMix64, whose output is
//! fixed by the algorithm; [`det_ln`] and [`det_exp`] use `+ - * /` only, because the
//! platform `libm` may differ in the last bit between systems and IEEE basic
//! arithmetic may not. A leaf module: it imports nothing from the crate, so any layer
//! can use it without depending on the generator.

/// SplitMix64 step: used to expand a 64-bit seed into the xoshiro state.
#[inline]
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A small, fast, seedable PRNG: xoshiro256** (Blackman & Vigna) with its state
/// filled by SplitMix64 from the seed. Not cryptographic. Its output is fixed by the
/// algorithm, so a seed means the same stream on every platform and version.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
    spare: Option<f64>,
}

impl Rng {
    /// The generator for `seed` (any value, 0 included).
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        let s = [splitmix64(&mut sm), splitmix64(&mut sm), splitmix64(&mut sm), splitmix64(&mut sm)];
        Rng { s, spare: None }
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)`, 53 random bits.
    #[inline]
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `(0, 1]`: safe to take the log of.
    #[inline]
    pub fn uniform_open0(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `0..n` (`0` for `n == 0`), by multiply-shift.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Standard normal: Box-Muller in Marsaglia's polar form, which needs no sine or
    /// cosine (only [`det_ln`] and an exact square root). Each pair of accepted
    /// uniforms gives two normals; the second is kept for the next call.
    #[inline]
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        loop {
            let u = 2.0 * self.uniform() - 1.0;
            let v = 2.0 * self.uniform() - 1.0;
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                let f = (-2.0 * det_ln(s) / s).sqrt();
                self.spare = Some(v * f);
                return u * f;
            }
        }
    }

    /// Exponential with the given mean, by inversion.
    #[inline]
    pub fn exp(&mut self, mean: f64) -> f64 {
        -mean * det_ln(self.uniform_open0())
    }

    /// Poisson with mean `lambda` (Knuth's product of uniforms; meant for small
    /// means, capped at 200 draws).
    pub fn poisson(&mut self, lambda: f64) -> u32 {
        let limit = det_exp(-lambda);
        let mut k = 0;
        let mut prod = self.uniform();
        while prod > limit && k < 200 {
            prod *= self.uniform();
            k += 1;
        }
        k
    }
}

/// ln 2 split as in fdlibm: the high part (bits `0x3fe62e42fee00000`) has trailing
/// zero bits so that `k * LN_2_HI` is exact for the exponents we meet.
const LN_2_HI: f64 = 0.693_147_180_369_123_8;
/// The rest of ln 2 (bits `0x3dea39ef35793c76`).
const LN_2_LO: f64 = 1.908_214_929_270_587_7e-10;

/// Natural logarithm with basic IEEE arithmetic only, so that it gives the same bits
/// on every platform (error a few ulp). `NaN` for negative or `NaN` input, `-inf` for
/// 0, `+inf` for `+inf`.
pub fn det_ln(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    if x.is_infinite() {
        return f64::INFINITY;
    }
    // x = m * 2^e with m in [sqrt(1/2), sqrt(2)).
    let (mut x, mut e) = (x, 0i64);
    if x < f64::MIN_POSITIVE {
        x *= (1u64 << 54) as f64;
        e -= 54;
    }
    let bits = x.to_bits();
    e += ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    if m > std::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    // ln m = 2 atanh(t), t = (m - 1) / (m + 1), |t| <= 0.1716: 12 odd terms reach 1e-19.
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let mut sum = 0.0;
    let mut k = 23.0;
    while k > 0.0 {
        sum = sum * t2 + 1.0 / k;
        k -= 2.0;
    }
    let ef = e as f64;
    ef * LN_2_HI + (2.0 * t * sum + ef * LN_2_LO)
}

/// `e^x` with basic IEEE arithmetic only (see [`det_ln`]). Saturates: 0 below -745,
/// `+inf` above 709.
pub fn det_exp(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x > 709.0 {
        return f64::INFINITY;
    }
    if x < -745.0 {
        return 0.0;
    }
    // x = k ln2 + r, |r| <= ln2 / 2; e^r by Taylor (degree 16: error below 1e-19).
    let k = (x * std::f64::consts::LOG2_E).round();
    let r = (x - k * LN_2_HI) - k * LN_2_LO;
    let mut sum = 1.0;
    let mut n = 16.0;
    while n > 0.0 {
        sum = 1.0 + sum * r / n;
        n -= 1.0;
    }
    // Scale by 2^k in two halves so that neither factor overflows or is subnormal.
    let k = k as i64;
    let k1 = k / 2;
    let k2 = k - k1;
    sum * pow2(k1) * pow2(k2)
}

/// `2^k` for `-1022 <= k <= 1023`.
#[inline]
fn pow2(k: i64) -> f64 {
    f64::from_bits(((k + 1023) as u64) << 52)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_reference_values() {
        // SplitMix64 from state 0 (reference implementation's first outputs).
        let mut s = 0u64;
        assert_eq!(splitmix64(&mut s), 0xe220_a839_7b1d_cdaf);
        assert_eq!(splitmix64(&mut s), 0x6e78_9e6a_a1b9_65f4);
        let mut r = Rng::new(1);
        let mean = (0..100_000).map(|_| r.uniform()).sum::<f64>() / 1e5;
        assert!((mean - 0.5).abs() < 0.005);
        let z: Vec<f64> = (0..100_000).map(|_| r.normal()).collect();
        let m = z.iter().sum::<f64>() / 1e5;
        let v = z.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / 1e5;
        assert!(m.abs() < 0.01 && (v - 1.0).abs() < 0.02, "{m} {v}");
        let e = (0..100_000).map(|_| r.exp(2.0)).sum::<f64>() / 1e5;
        assert!((e - 2.0).abs() < 0.03);
    }

    #[test]
    fn deterministic_maths_match_std() {
        assert_eq!(LN_2_HI.to_bits(), 0x3fe6_2e42_fee0_0000);
        assert_eq!(LN_2_LO.to_bits(), 0x3dea_39ef_3579_3c76);
        let mut r = Rng::new(9);
        for _ in 0..100_000 {
            let x = det_exp(r.uniform() * 1400.0 - 700.0);
            let (a, b) = (det_ln(x), x.ln());
            assert!((a - b).abs() <= 4.0 * f64::EPSILON * b.abs().max(1.0), "ln {x}: {a} {b}");
            let y = r.uniform() * 80.0 - 40.0;
            let (a, b) = (det_exp(y), y.exp());
            assert!((a - b).abs() <= 4.0 * f64::EPSILON * b, "exp {y}: {a} {b}");
        }
        assert_eq!(det_ln(1.0), 0.0);
        assert_eq!(det_exp(0.0), 1.0);
        assert!(det_ln(-1.0).is_nan() && det_ln(0.0) == f64::NEG_INFINITY);
        assert!((det_ln(f64::MIN_POSITIVE / 8.0) - (f64::MIN_POSITIVE / 8.0).ln()).abs() < 1e-12);
        assert_eq!(det_exp(1000.0), f64::INFINITY);
        assert_eq!(det_exp(-1000.0), 0.0);
    }
}
