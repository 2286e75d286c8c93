//! Latency models of the backtest: how long a market event takes to reach the Core
//! (feed latency), an order to reach the matching engine (entry latency), and a report
//! to come back (response latency).
//!
//! Each model implements [`Latency`]: `sample(now)` returns the delay in ns of a
//! message sent at `now`. Three models:
//!
//! - [`Constant`]: the same delay every time.
//! - [`LogNormal`]: `median * exp(sigma * Z)`, `Z` standard normal from a seeded
//!   [`Rng`], the exponential by [`det_exp`]: the same draws on every platform.
//!   Network delays are right-skewed with a hard floor near the median; a lognormal is
//!   the usual first fit.
//! - [`Series`]: a recorded series, piecewise constant in time: the delay at `now` is
//!   that of the last row at or before `now` (the first row's before it). Loaded from
//!   a CSV `ts_ns,latency_ns` (an optional header line; rows sorted by time), e.g. the
//!   measured round trips of a live session, as hftbacktest's interpolated order
//!   latency does with its recorded latencies.
//!
//! Delivery is FIFO on every path: the driver raises each arrival to the previous
//! one's on the same path, since the feed and the order session are each one TCP
//! connection, which does not reorder. This also keeps an order's cancel behind the
//! order, whatever the draws.
//!
//! The runtime choice is the [`LatencyModel`] enum, which implements [`Latency`] by a
//! `match`: a latency is drawn once per order and report (and per event only for a
//! modelled feed latency), where one well-predicted branch costs nothing, whereas
//! making the driver generic over three latency types would instantiate it 27 times.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::detmath::{det_exp, Rng};
use crate::types::Ts;

/// Largest delay any model may produce: 1 hour. A larger value is a unit mistake.
pub const MAX_LATENCY_NS: i64 = 3_600 * 1_000_000_000;

/// A delay model: the delay of a message sent at `now`.
pub trait Latency {
    /// The delay in ns (`0..=MAX_LATENCY_NS`) of a message sent at `now`.
    fn sample(&mut self, now: Ts) -> i64;
}

/// The same delay for every message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Constant {
    ns: i64,
}

impl Constant {
    /// A constant delay of `ns` (clamped to `0..=MAX_LATENCY_NS`).
    pub fn new(ns: i64) -> Self {
        Constant { ns: ns.clamp(0, MAX_LATENCY_NS) }
    }
}

impl Latency for Constant {
    #[inline]
    fn sample(&mut self, _now: Ts) -> i64 {
        self.ns
    }
}

/// Lognormal delays: `median * exp(sigma * Z)`.
#[derive(Debug, Clone)]
pub struct LogNormal {
    median: f64,
    sigma: f64,
    rng: Rng,
}

impl LogNormal {
    /// Delays with the given median (ns, `> 0`) and log standard deviation (`>= 0`),
    /// drawn from a generator seeded with `seed`.
    pub fn new(median_ns: i64, sigma: f64, seed: u64) -> Self {
        LogNormal { median: median_ns as f64, sigma, rng: Rng::new(seed) }
    }
}

impl Latency for LogNormal {
    #[inline]
    fn sample(&mut self, _now: Ts) -> i64 {
        let v = self.median * det_exp(self.sigma * self.rng.normal());
        // NaN cannot occur for valid parameters; `as` saturates, the clamp bounds it.
        (v.round() as i64).clamp(0, MAX_LATENCY_NS)
    }
}

/// A recorded delay series, piecewise constant in time.
#[derive(Debug, Clone)]
pub struct Series {
    /// `(ts, delay)` rows, sorted by `ts`, at least one.
    rows: Arc<[(Ts, i64)]>,
    /// Index of the row in force at the last lookup.
    cursor: usize,
}

impl Series {
    /// A series from `(ts_ns, latency_ns)` rows: at least one, sorted by time,
    /// delays in `0..=MAX_LATENCY_NS`.
    pub fn new(rows: Vec<(Ts, i64)>) -> Result<Self, LatencyError> {
        Self::checked(rows, "<rows>")
    }

    fn checked(rows: Vec<(Ts, i64)>, source: &str) -> Result<Self, LatencyError> {
        if rows.is_empty() {
            return Err(LatencyError::Empty { file: source.into() });
        }
        for (i, &(ts, ns)) in rows.iter().enumerate() {
            if !(0..=MAX_LATENCY_NS).contains(&ns) {
                return Err(LatencyError::Range { file: source.into(), row: i + 1, ns });
            }
            if i > 0 && ts < rows[i - 1].0 {
                return Err(LatencyError::Unsorted { file: source.into(), row: i + 1 });
            }
        }
        Ok(Series { rows: rows.into(), cursor: 0 })
    }

    /// Reads a CSV of `ts_ns,latency_ns` rows (integers; a first line that is not
    /// numeric is taken as a header). `source` names it in errors.
    pub fn from_csv<R: Read>(r: R, source: &str) -> Result<Self, LatencyError> {
        let mut rd = csv::ReaderBuilder::new().has_headers(false).trim(csv::Trim::All).from_reader(r);
        let mut rows = Vec::new();
        for (i, rec) in rd.records().enumerate() {
            let line = i + 1;
            let rec = rec.map_err(|e| LatencyError::Csv { file: source.into(), line, msg: e.to_string() })?;
            let bad = |msg: &str| LatencyError::Csv { file: source.into(), line, msg: msg.into() };
            if rec.len() != 2 {
                return Err(bad("expected two columns `ts_ns,latency_ns`"));
            }
            match (rec[0].parse::<i64>(), rec[1].parse::<i64>()) {
                (Ok(ts), Ok(ns)) => rows.push((ts, ns)),
                _ if i == 0 => continue, // header
                _ => return Err(bad("not an integer")),
            }
        }
        Self::checked(rows, source)
    }

    /// Reads a series file (see [`Self::from_csv`]).
    pub fn load(path: &Path) -> Result<Self, LatencyError> {
        let name = path.display().to_string();
        let f = std::fs::File::open(path).map_err(|e| LatencyError::Io { path: name.clone(), msg: e.to_string() })?;
        Self::from_csv(std::io::BufReader::new(f), &name)
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Always false: a series has at least one row.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

impl Latency for Series {
    /// Amortised O(1) for nondecreasing `now` (a cursor walks forward), a binary
    /// search if time went back.
    #[inline]
    fn sample(&mut self, now: Ts) -> i64 {
        let rows = &self.rows;
        if now < rows[self.cursor].0 && self.cursor > 0 {
            self.cursor = rows.partition_point(|r| r.0 <= now).saturating_sub(1);
        }
        while self.cursor + 1 < rows.len() && rows[self.cursor + 1].0 <= now {
            self.cursor += 1;
        }
        rows[self.cursor].1
    }
}

/// One of the delay models, chosen at run time.
#[derive(Debug, Clone)]
pub enum LatencyModel {
    /// [`Constant`].
    Constant(Constant),
    /// [`LogNormal`].
    LogNormal(LogNormal),
    /// [`Series`].
    Series(Series),
}

impl Latency for LatencyModel {
    #[inline]
    fn sample(&mut self, now: Ts) -> i64 {
        match self {
            LatencyModel::Constant(m) => m.sample(now),
            LatencyModel::LogNormal(m) => m.sample(now),
            LatencyModel::Series(m) => m.sample(now),
        }
    }
}

/// Errors from latency configuration and series files.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum LatencyError {
    /// A parameter is out of range.
    #[error("latency {name} = {value} is out of range ({expect})")]
    Param {
        /// Parameter name.
        name: &'static str,
        /// Its value.
        value: f64,
        /// The valid range.
        expect: &'static str,
    },
    /// A series file could not be read.
    #[error("latency series {path}: {msg}")]
    Io {
        /// File.
        path: String,
        /// OS error.
        msg: String,
    },
    /// A malformed CSV line.
    #[error("latency series {file}, line {line}: {msg}")]
    Csv {
        /// File.
        file: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// No rows.
    #[error("latency series {file} has no rows")]
    Empty {
        /// File.
        file: String,
    },
    /// Rows out of time order.
    #[error("latency series {file}: row {row} is earlier than the row before")]
    Unsorted {
        /// File.
        file: String,
        /// 1-based data row.
        row: usize,
    },
    /// A delay outside `0..=MAX_LATENCY_NS`.
    #[error("latency series {file}: row {row} has latency {ns} ns, outside 0..=1 h")]
    Range {
        /// File.
        file: String,
        /// 1-based data row.
        row: usize,
        /// The delay.
        ns: i64,
    },
}

/// An order-path delay model, from config: `{ kind = "constant", ns = 1000000 }`,
/// `{ kind = "lognormal", median_ns = 800000, sigma = 0.5 }` or
/// `{ kind = "series", path = "latency.csv" }` (relative to the working directory).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum LatencyConfig {
    /// [`Constant`].
    Constant {
        /// Delay, ns.
        ns: i64,
    },
    /// [`LogNormal`].
    Lognormal {
        /// Median delay, ns, `> 0`.
        median_ns: i64,
        /// Standard deviation of the log delay, `0..=5`.
        sigma: f64,
    },
    /// [`Series`].
    Series {
        /// CSV file of `ts_ns,latency_ns`.
        path: PathBuf,
    },
}

impl LatencyConfig {
    /// Checks the parameters (a series file is checked when loaded by [`Self::build`]).
    pub fn validate(&self) -> Result<(), LatencyError> {
        let ns_ok = |name, ns: i64, min: i64| {
            if (min..=MAX_LATENCY_NS).contains(&ns) {
                Ok(())
            } else {
                let expect = if min == 0 { "0 ..= 1 h in ns" } else { "1 ..= 1 h in ns" };
                Err(LatencyError::Param { name, value: ns as f64, expect })
            }
        };
        match *self {
            LatencyConfig::Constant { ns } => ns_ok("ns", ns, 0),
            LatencyConfig::Lognormal { median_ns, sigma } => {
                ns_ok("median_ns", median_ns, 1)?;
                if !(sigma.is_finite() && (0.0..=5.0).contains(&sigma)) {
                    return Err(LatencyError::Param { name: "sigma", value: sigma, expect: "0 ..= 5" });
                }
                Ok(())
            }
            LatencyConfig::Series { .. } => Ok(()),
        }
    }

    /// The same model with every delay multiplied by `factor` (the median of a
    /// log-normal; its spread `sigma` is a ratio and stays), for sensitivity runs.
    /// `None` for a series file, whose delays are data, or when a scaled delay would
    /// leave `0..=`[`MAX_LATENCY_NS`] or `factor` is not finite and positive.
    pub fn scaled(&self, factor: f64) -> Option<LatencyConfig> {
        let scale = |ns: i64| {
            let v = (ns as f64 * factor).round();
            (factor.is_finite() && factor > 0.0 && (0.0..=MAX_LATENCY_NS as f64).contains(&v)).then_some(v as i64)
        };
        match *self {
            LatencyConfig::Constant { ns } => Some(LatencyConfig::Constant { ns: scale(ns)? }),
            LatencyConfig::Lognormal { median_ns, sigma } => {
                Some(LatencyConfig::Lognormal { median_ns: scale(median_ns)?.max(1), sigma })
            }
            LatencyConfig::Series { .. } => None,
        }
    }

    /// The model, its random draws seeded with `seed`; loads a series file.
    pub fn build(&self, seed: u64) -> Result<LatencyModel, LatencyError> {
        self.validate()?;
        Ok(match self {
            LatencyConfig::Constant { ns } => LatencyModel::Constant(Constant::new(*ns)),
            LatencyConfig::Lognormal { median_ns, sigma } => {
                LatencyModel::LogNormal(LogNormal::new(*median_ns, *sigma, seed))
            }
            LatencyConfig::Series { path } => LatencyModel::Series(Series::load(path)?),
        })
    }
}

/// The feed delay, from config: `{ kind = "data" }` takes each event's local time as
/// recorded; the other kinds are those of [`LatencyConfig`] and set `local = exch +
/// delay`, kept nondecreasing (the feed is one FIFO connection).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum FeedLatencyConfig {
    /// Use the recorded `local_ts` (the generated data set and recordings have both
    /// stamps).
    Data {},
    /// See [`LatencyConfig::Constant`].
    Constant {
        /// Delay, ns.
        ns: i64,
    },
    /// See [`LatencyConfig::Lognormal`].
    Lognormal {
        /// Median delay, ns.
        median_ns: i64,
        /// Standard deviation of the log delay.
        sigma: f64,
    },
    /// See [`LatencyConfig::Series`].
    Series {
        /// CSV file of `ts_ns,latency_ns`.
        path: PathBuf,
    },
}

impl FeedLatencyConfig {
    /// The delay model, or `None` for [`FeedLatencyConfig::Data`].
    pub fn model(&self) -> Option<LatencyConfig> {
        Some(match self {
            FeedLatencyConfig::Data {} => return None,
            FeedLatencyConfig::Constant { ns } => LatencyConfig::Constant { ns: *ns },
            FeedLatencyConfig::Lognormal { median_ns, sigma } => {
                LatencyConfig::Lognormal { median_ns: *median_ns, sigma: *sigma }
            }
            FeedLatencyConfig::Series { path } => LatencyConfig::Series { path: path.clone() },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_and_clamp() {
        let mut c = Constant::new(500_000);
        assert_eq!(c.sample(0), 500_000);
        assert_eq!(Constant::new(-5).sample(0), 0);
    }

    #[test]
    fn lognormal_is_seeded_and_has_its_median() {
        let mut a = LogNormal::new(1_000_000, 0.5, 7);
        let mut b = LogNormal::new(1_000_000, 0.5, 7);
        let xs: Vec<i64> = (0..20_001).map(|i| a.sample(i)).collect();
        let ys: Vec<i64> = (0..20_001).map(|i| b.sample(i)).collect();
        assert_eq!(xs, ys, "same seed, same draws");
        let mut s = xs.clone();
        s.sort_unstable();
        let median = s[s.len() / 2] as f64;
        assert!((median / 1e6 - 1.0).abs() < 0.03, "median {median}");
        assert!(xs.iter().all(|&v| v > 0));
        // sigma 0 is the constant.
        assert_eq!(LogNormal::new(42, 0.0, 1).sample(0), 42);
    }

    #[test]
    fn series_is_piecewise_constant() {
        let mut s = Series::new(vec![(100, 5), (200, 7), (200, 8), (300, 9)]).unwrap();
        assert_eq!(s.sample(0), 5, "before the first row: the first value");
        assert_eq!(s.sample(100), 5);
        assert_eq!(s.sample(199), 5);
        assert_eq!(s.sample(200), 8, "the last row at a repeated time wins");
        assert_eq!(s.sample(10_000), 9);
        assert_eq!(s.sample(150), 5, "time going back is looked up");
        assert_eq!(s.sample(250), 8);
    }

    #[test]
    fn series_csv_and_its_errors() {
        let mut s = Series::from_csv("ts_ns,latency_ns\n10,100\n20, 200\n".as_bytes(), "t").unwrap();
        assert_eq!((s.len(), s.sample(15), s.sample(25)), (2, 100, 200));
        assert!(Series::from_csv("10,100\n".as_bytes(), "t").is_ok(), "header optional");
        let err = |text: &str| Series::from_csv(text.as_bytes(), "t").unwrap_err();
        assert!(matches!(err("a,b\n"), LatencyError::Empty { .. }));
        assert!(matches!(err("10,100\nx,1\n"), LatencyError::Csv { line: 2, .. }));
        assert!(matches!(err("10,100,3\n"), LatencyError::Csv { line: 1, .. }));
        assert!(matches!(err("20,1\n10,1\n"), LatencyError::Unsorted { row: 2, .. }));
        assert!(matches!(err("20,-1\n"), LatencyError::Range { row: 1, .. }));
        assert!(matches!(Series::load(Path::new("/nonexistent/x.csv")), Err(LatencyError::Io { .. })));
    }

    #[test]
    fn config_parses_validates_and_builds() {
        #[derive(Deserialize)]
        struct T {
            a: LatencyConfig,
            f: FeedLatencyConfig,
        }
        let t: T =
            toml::from_str("a = { kind = \"lognormal\", median_ns = 800000, sigma = 0.4 }\nf = { kind = \"data\" }")
                .unwrap();
        assert_eq!(t.a, LatencyConfig::Lognormal { median_ns: 800_000, sigma: 0.4 });
        assert_eq!(t.f.model(), None);
        let bad = |s: &str| toml::from_str::<LatencyConfig>(s).is_err();
        assert!(bad("kind = \"constant\"\nns = 1\nmedian_ns = 3"), "unknown field");
        assert!(bad("kind = \"data\""), "data is for the feed only");
        assert!(bad("kind = \"constant\""), "missing field");
        assert!(LatencyConfig::Constant { ns: -1 }.validate().is_err());
        assert!(LatencyConfig::Lognormal { median_ns: 0, sigma: 0.1 }.validate().is_err());
        assert!(LatencyConfig::Lognormal { median_ns: 1, sigma: f64::NAN }.validate().is_err());
        assert!(matches!(
            LatencyConfig::Series { path: "/nonexistent.csv".into() }.build(1),
            Err(LatencyError::Io { .. })
        ));
        let mut m = LatencyConfig::Constant { ns: 3 }.build(1).unwrap();
        assert_eq!(m.sample(0), 3);
        assert!(toml::from_str::<FeedLatencyConfig>("kind = \"data\"\nns = 9").is_err(), "unknown field");
        let f: FeedLatencyConfig = toml::from_str("kind = \"constant\"\nns = 9").unwrap();
        assert_eq!(f.model(), Some(LatencyConfig::Constant { ns: 9 }));
    }

    #[test]
    fn scaled_multiplies_the_delays_not_the_spread() {
        let c = LatencyConfig::Constant { ns: 1_000_000 };
        assert_eq!(c.scaled(0.5), Some(LatencyConfig::Constant { ns: 500_000 }));
        assert_eq!(c.scaled(2.0), Some(LatencyConfig::Constant { ns: 2_000_000 }));
        let l = LatencyConfig::Lognormal { median_ns: 300, sigma: 0.4 };
        assert_eq!(l.scaled(2.0), Some(LatencyConfig::Lognormal { median_ns: 600, sigma: 0.4 }));
        assert_eq!(LatencyConfig::Series { path: "s.csv".into() }.scaled(2.0), None);
        assert_eq!(LatencyConfig::Constant { ns: MAX_LATENCY_NS }.scaled(2.0), None);
        assert_eq!(c.scaled(f64::NAN), None);
        assert_eq!(c.scaled(-1.0), None);
    }
}
