//! Parameter sweeps: a grid of configuration values, expanded into independent points.
//!
//! A grid file is TOML:
//!
//! ```toml
//! config = "config/default.toml"   # base configuration (default: the built-in one),
//!                                  # relative to the grid file
//! [params]                         # dotted config keys -> the values to try
//! "pairs.entry_z" = [1.5, 2.0, 2.5]
//! "pairs.exit_z" = [0.0, 0.5]
//! "backtest.entry_latency" = [{ kind = "constant", ns = 100_000 }, { kind = "constant", ns = 1_000_000 }]
//! ```
//!
//! The key `"data.seed"` ([`SEED_KEY`]) is not a config key: it varies the seed of the
//! built-in data set, so a grid can check a result across data sets.
//!
//! The points are the cartesian product of the value lists, in a fixed order (keys
//! sorted, the last key varying fastest), numbered from 0. Each point is a complete,
//! validated [`Config`] and an independent job: `--shard i/n` keeps the points whose
//! number is `i` modulo `n`, so `n` machines (a Slurm array, a Kubernetes Indexed Job)
//! split one sweep without talking to each other, and concatenating their CSVs gives
//! the full table. Within a process the points run in parallel on rayon's pool; results
//! come back in point order.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Deserialize;
use thiserror::Error;

use crate::backtest::stats::Report;
use crate::config::{Config, ConfigError};

/// Why a grid could not be used.
#[derive(Debug, Error)]
pub enum SweepError {
    /// The grid file could not be read.
    #[error("{file}: {error}")]
    Io {
        /// Grid file.
        file: String,
        /// Cause.
        error: std::io::Error,
    },
    /// The grid file is not valid TOML of the expected shape.
    #[error("{file}: {error}")]
    Parse {
        /// Grid file.
        file: String,
        /// Cause.
        error: toml::de::Error,
    },
    /// The grid is empty or a key is malformed.
    #[error("{file}: {msg}")]
    Invalid {
        /// Grid file.
        file: String,
        /// What is wrong.
        msg: String,
    },
    /// A point's configuration is invalid (the message names the point and the key).
    #[error("point {index} ({label}): {error}")]
    Point {
        /// Point number.
        index: usize,
        /// Its parameter values.
        label: String,
        /// Cause.
        error: Box<ConfigError>,
    },
    /// A malformed `--shard` argument.
    #[error("shard {0:?}: expected i/n with 0 <= i < n")]
    Shard(String),
    /// A shard CSV could not be read or the merged table written.
    #[error("{file}: {error}")]
    Csv {
        /// The file (`<output>` for the merged table).
        file: String,
        /// Cause.
        #[source]
        error: csv::Error,
    },
    /// Shard CSVs that are not parts of one sweep.
    #[error("{file}: {msg}")]
    Merge {
        /// The offending file.
        file: String,
        /// What is wrong.
        msg: String,
    },
    /// A thread count that is zero or not a number.
    #[error("{0}: the thread count must be a whole number in 1..={MAX_THREADS}")]
    Threads(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GridFile {
    #[serde(default)]
    config: Option<PathBuf>,
    params: toml::Table,
}

/// One point of a grid.
#[derive(Debug, Clone)]
pub struct Point {
    /// Number of the point in the whole grid (not the shard).
    pub index: usize,
    /// `(dotted key, value)` per parameter, in key order.
    pub values: Vec<(String, toml::Value)>,
    /// The configuration of this point.
    pub config: Config,
    /// The seed of the built-in data set from the grid's [`SEED_KEY`] axis, if it has
    /// one: the point replays the data generated with it.
    pub seed: Option<u64>,
}

/// The grid key that varies the built-in data set's seed rather than a config value,
/// to check that a result holds across data sets: `"data.seed" = [1, 2, 3, 4, 5]`.
pub const SEED_KEY: &str = "data.seed";

impl Point {
    /// The values as CSV-friendly text: numbers and strings plain, tables inline TOML.
    pub fn value_strings(&self) -> Vec<String> {
        self.values.iter().map(|(_, v)| render(v)).collect()
    }

    /// `key=value` pairs joined by `;`, for messages.
    pub fn label(&self) -> String {
        self.values.iter().map(|(k, v)| format!("{k}={}", render(v))).collect::<Vec<_>>().join(";")
    }
}

fn render(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `i/n`: this process's share of a sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, `0..n`.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl Default for Shard {
    fn default() -> Self {
        Shard { index: 0, count: 1 }
    }
}

impl std::str::FromStr for Shard {
    type Err = SweepError;

    fn from_str(s: &str) -> Result<Shard, SweepError> {
        let bad = || SweepError::Shard(s.to_string());
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) =
            (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// A grid or config file's text, at most [`crate::config::MAX_CONFIG_BYTES`] of it.
fn read_text(path: &Path) -> Result<String, SweepError> {
    let file = path.display().to_string();
    let max = crate::config::MAX_CONFIG_BYTES;
    match crate::config::read_bounded(path, max) {
        Ok(Some(text)) => Ok(text),
        Ok(None) => {
            Err(SweepError::Invalid { file, msg: format!("longer than {max} bytes; not a grid or config file") })
        }
        Err(error) => Err(SweepError::Io { file, error }),
    }
}

/// A parsed grid: the keys, their values, and the resolved base table.
#[derive(Debug, Clone)]
pub struct Grid {
    file: String,
    base: toml::Table,
    params: Vec<(String, Vec<toml::Value>)>,
}

impl Grid {
    /// Reads a grid file; a relative `config` path is taken from the grid's directory.
    pub fn load(path: &Path) -> Result<Grid, SweepError> {
        let file = path.display().to_string();
        let text = read_text(path)?;
        Grid::parse(&text, &file, path.parent().unwrap_or(Path::new(".")))
    }

    /// Parses grid text; `dir` resolves a relative `config` path.
    pub fn parse(text: &str, file: &str, dir: &Path) -> Result<Grid, SweepError> {
        let g: GridFile = toml::from_str(text).map_err(|error| SweepError::Parse { file: file.into(), error })?;
        let invalid = |msg: String| SweepError::Invalid { file: file.into(), msg };
        let (base_text, base_name) = match &g.config {
            Some(p) => {
                let p = if p.is_absolute() { p.clone() } else { dir.join(p) };
                (read_text(&p)?, p.display().to_string())
            }
            None => (crate::config::DEFAULT_TOML.to_string(), "<builtin config/default.toml>".to_string()),
        };
        let table: toml::Table =
            toml::from_str(&base_text).map_err(|error| SweepError::Parse { file: base_name.clone(), error })?;
        let base = Config::resolve(table, &base_name).map_err(|e| invalid(e.to_string()))?;
        let mut params = Vec::with_capacity(g.params.len());
        for (key, v) in g.params {
            if key.split('.').any(str::is_empty) {
                return Err(invalid(format!("params: malformed key {key:?}")));
            }
            let values = match v {
                toml::Value::Array(a) if !a.is_empty() => a,
                toml::Value::Array(_) => return Err(invalid(format!("params.{key:?}: no values"))),
                other => vec![other],
            };
            params.push((key, values));
        }
        if params.is_empty() {
            return Err(invalid("[params] is empty".into()));
        }
        Ok(Grid { file: file.into(), base, params })
    }

    /// The parameter keys, in point order.
    pub fn keys(&self) -> Vec<&str> {
        self.params.iter().map(|(k, _)| k.as_str()).collect()
    }

    /// Number of points in the whole grid.
    pub fn len(&self) -> usize {
        self.params.iter().map(|(_, v)| v.len()).product()
    }

    /// True if the grid has no points (never, once parsed).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The points of `shard`, each with its validated configuration. Fails on the first
    /// invalid point, naming it, before anything runs.
    pub fn points(&self, shard: Shard) -> Result<Vec<Point>, SweepError> {
        (0..self.len()).filter(|i| i % shard.count == shard.index).map(|i| self.point(i)).collect()
    }

    fn point(&self, index: usize) -> Result<Point, SweepError> {
        let mut rest = index;
        let mut values = vec![(String::new(), toml::Value::Boolean(false)); self.params.len()];
        for (slot, (key, vals)) in values.iter_mut().zip(&self.params).rev() {
            *slot = (key.clone(), vals[rest % vals.len()].clone());
            rest /= vals.len();
        }
        let mut table = self.base.clone();
        let label = values.iter().map(|(k, v)| format!("{k}={}", render(v))).collect::<Vec<_>>().join(";");
        let point_err = |error| SweepError::Point { index, label: label.clone(), error: Box::new(error) };
        let mut seed = None;
        for (key, v) in &values {
            if key == SEED_KEY {
                let bad =
                    |msg: &str| ConfigError::Invalid { file: self.file.clone(), key: key.clone(), msg: msg.into() };
                let n = v.as_integer().ok_or_else(|| point_err(bad("a seed is a whole number")))?;
                seed = Some(u64::try_from(n).map_err(|_| point_err(bad("a seed is not negative")))?);
                continue;
            }
            set_dotted(&mut table, key, v.clone())
                .map_err(|msg| point_err(ConfigError::Invalid { file: self.file.clone(), key: key.clone(), msg }))?;
        }
        let config = Config::from_table(table, &self.file).map_err(point_err)?;
        Ok(Point { index, values, config, seed })
    }
}

/// Sets `a.b.c = v` in `table`, creating intermediate tables.
fn set_dotted(table: &mut toml::Table, key: &str, v: toml::Value) -> Result<(), String> {
    let mut parts = key.split('.').peekable();
    let mut t = table;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            t.insert(part.to_string(), v);
            return Ok(());
        }
        let next = t.entry(part.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        t = match next {
            toml::Value::Table(inner) => inner,
            _ => return Err(format!("{part} is not a table")),
        };
    }
    Ok(())
}

/// The metric columns of a sweep's CSV, after the point number and its parameter
/// values: one row per point. The last two are the run's digest and, for a point that
/// failed or was interrupted, the error.
pub const METRICS: [&str; 23] = [
    "pnl_net",
    "pnl_gross",
    "fees",
    "pnl_signal",
    "pnl_execution",
    "signal_entries",
    "round_trips",
    "trade_mean",
    "trade_t",
    "hit_rate",
    "sharpe",
    "sortino",
    "max_drawdown",
    "return_over_drawdown",
    "hedge_error_mean",
    "turnover",
    "fills",
    "orders",
    "fill_ratio",
    "maker_share",
    "time_flat",
    "digest",
    "error",
];

/// The cells of [`METRICS`] for a finished point (the error cell empty); an undefined
/// value is an empty cell.
pub fn metric_cells(r: &Report, digest: String) -> Vec<String> {
    let opt = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    vec![
        opt(r.pnl_net),
        opt(r.pnl_gross),
        opt(r.fees),
        opt(r.pnl_signal),
        opt(r.pnl_execution),
        r.signal_entries.to_string(),
        r.round_trips.to_string(),
        opt(r.trades.mean),
        opt(r.trades.t_stat),
        opt(r.trades.hit_rate),
        opt(r.sharpe),
        opt(r.sortino),
        r.max_drawdown.to_string(),
        opt(r.return_over_drawdown),
        opt(r.hedge_error_mean),
        r.turnover.to_string(),
        r.fills.to_string(),
        r.orders.to_string(),
        opt(r.fill_ratio),
        opt(r.maker_share),
        opt(r.time_flat),
        digest,
        String::new(),
    ]
}

/// True for the metrics where lower is better (costs and risk), for ranking.
pub fn lower_is_better(metric: &str) -> bool {
    matches!(metric, "max_drawdown" | "fees" | "hedge_error_mean")
}

/// What [`merge`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeStats {
    /// Shard files read.
    pub files: usize,
    /// Rows (points) written.
    pub rows: usize,
    /// Points missing from `0..=max`: a shard not run or not given.
    pub missing: usize,
}

/// Merges the CSVs of a sharded sweep (`--shard i/n`, one file per shard) into the
/// table one unsharded run writes: the same header, every point's row in point order.
/// Every file must have the same header, whose first column is `point`, and no point
/// may appear twice; points missing from `0..=max` are counted, not an error (a shard
/// still running), and the caller says so.
pub fn merge(inputs: &[PathBuf], out: impl std::io::Write) -> Result<MergeStats, SweepError> {
    let mut header: Option<csv::StringRecord> = None;
    let mut rows: Vec<(usize, csv::StringRecord)> = Vec::new();
    for path in inputs {
        let file = path.display().to_string();
        let csv_err = |error| SweepError::Csv { file: file.clone(), error };
        let bad = |msg: String| SweepError::Merge { file: file.clone(), msg };
        let mut rd = csv::Reader::from_path(path).map_err(csv_err)?;
        let h = rd.headers().map_err(csv_err)?.clone();
        if h.get(0) != Some("point") {
            return Err(bad("not a sweep CSV: the first column is not `point`".into()));
        }
        match &header {
            None => header = Some(h),
            Some(first) if *first != h => {
                return Err(bad(format!("its columns differ from those of {}", inputs[0].display())))
            }
            Some(_) => {}
        }
        for (line, rec) in rd.records().enumerate() {
            let rec = rec.map_err(csv_err)?;
            let point = rec
                .get(0)
                .and_then(|p| p.parse::<usize>().ok())
                .ok_or_else(|| bad(format!("row {}: the point number is not a number", line + 1)))?;
            rows.push((point, rec));
        }
    }
    let Some(header) = header else {
        return Err(SweepError::Merge { file: "<input>".into(), msg: "no shard files given".into() });
    };
    rows.sort_by_key(|r| r.0);
    if let Some(w) = rows.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(SweepError::Merge { file: "<input>".into(), msg: format!("point {} is in two shards", w[0].0) });
    }
    let out_err = |error| SweepError::Csv { file: "<output>".into(), error };
    let mut w = csv::Writer::from_writer(out);
    w.write_record(&header).map_err(out_err)?;
    for (_, r) in &rows {
        w.write_record(r).map_err(out_err)?;
    }
    w.flush().map_err(|e| out_err(e.into()))?;
    let missing = rows.last().map_or(0, |r| r.0 + 1 - rows.len());
    Ok(MergeStats { files: inputs.len(), rows: rows.len(), missing })
}

/// The most worker threads a sweep starts: more than any node has CPUs, and few
/// enough that a typo (`--threads 10000000`) is an error, not a fork bomb.
pub const MAX_THREADS: usize = 4096;

/// The number of worker threads of a sweep: `flag` (`--threads N`) if given, else
/// `slurm` (the value of `SLURM_CPUS_PER_TASK`, which Slurm sets to the CPUs it gave
/// the task), else every CPU of the machine. A task given 1 CPU then runs 1 thread,
/// not one per CPU of the node. Zero, more than [`MAX_THREADS`] or a malformed value
/// is an error naming it.
pub fn threads(flag: Option<usize>, slurm: Option<&str>) -> Result<usize, SweepError> {
    let ok = |n: usize| (1..=MAX_THREADS).contains(&n);
    match (flag, slurm) {
        (Some(n), _) if ok(n) => Ok(n),
        (Some(n), _) => Err(SweepError::Threads(format!("--threads {n}"))),
        (None, Some(s)) => match s.trim().parse::<usize>() {
            Ok(n) if ok(n) => Ok(n),
            _ => Err(SweepError::Threads(format!("SLURM_CPUS_PER_TASK={s:?}"))),
        },
        (None, None) => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
    }
}

/// Runs `job` on every point in parallel (rayon's global pool) and returns the results
/// in point order. Jobs must not depend on each other or on the thread they run on.
pub fn run<T: Send>(points: &[Point], job: impl Fn(&Point) -> T + Sync + Send) -> Vec<T> {
    points.par_iter().map(job).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_orders_the_shards_rows_by_point_and_refuses_mixed_tables() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let a = write("s0.csv", "point,x,pnl_net\n0,1,\"2,5\"\n2,3,4\n");
        let b = write("s1.csv", "point,x,pnl_net\n1,2,3\n3,4,5\n");
        let mut out = Vec::new();
        let st = merge(&[b.clone(), a.clone()], &mut out).unwrap();
        assert_eq!(st, MergeStats { files: 2, rows: 4, missing: 0 });
        assert_eq!(String::from_utf8(out).unwrap(), "point,x,pnl_net\n0,1,\"2,5\"\n1,2,3\n2,3,4\n3,4,5\n");
        // One shard of three: the rest are missing, not an error.
        let st = merge(std::slice::from_ref(&a), std::io::sink()).unwrap();
        assert_eq!(st.missing, 1);
        let other = write("o.csv", "point,y,pnl_net\n1,2,3\n");
        let e = merge(&[a.clone(), other], std::io::sink()).unwrap_err().to_string();
        assert!(e.contains("o.csv") && e.contains("columns differ"), "{e}");
        let e = merge(&[a.clone(), a.clone()], std::io::sink()).unwrap_err().to_string();
        assert!(e.contains("point 0 is in two shards"), "{e}");
        let e = merge(&[write("n.csv", "a,b\n1,2\n")], std::io::sink()).unwrap_err().to_string();
        assert!(e.contains("n.csv") && e.contains("not a sweep CSV"), "{e}");
    }

    fn grid(params: &str) -> Result<Grid, SweepError> {
        Grid::parse(&format!("[params]\n{params}"), "g.toml", Path::new("."))
    }

    #[test]
    fn cartesian_product_in_fixed_order() {
        let g = grid("\"pairs.entry_z\" = [1.5, 2.0, 2.5]\n\"pairs.exit_z\" = [0.0, 0.5]\n").unwrap();
        assert_eq!(g.len(), 6);
        assert_eq!(g.keys(), ["pairs.entry_z", "pairs.exit_z"]);
        let pts = g.points(Shard::default()).unwrap();
        let got: Vec<(f64, f64)> = pts.iter().map(|p| (p.config.pairs.entry_z, p.config.pairs.exit_z)).collect();
        assert_eq!(got, [(1.5, 0.0), (1.5, 0.5), (2.0, 0.0), (2.0, 0.5), (2.5, 0.0), (2.5, 0.5)]);
        assert_eq!(pts[3].label(), "pairs.entry_z=2.0;pairs.exit_z=0.5");
        // Everything not swept is the base config's.
        let d = Config::builtin();
        assert_eq!(pts[0].config.risk.stale_ms, d.risk.stale_ms);
        assert_eq!(pts[0].config.y.symbol, d.y.symbol);
    }

    #[test]
    fn shards_partition_the_grid() {
        let g = grid("\"kalman.delta\" = [1e-5, 1e-4, 1e-3]\n\"pairs.entry_z\" = [1.0, 2.0, 3.0]\n").unwrap();
        let mut seen: Vec<usize> = Vec::new();
        for i in 0..4 {
            let shard: Shard = format!("{i}/4").parse().unwrap();
            seen.extend(g.points(shard).unwrap().iter().map(|p| p.index));
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..9).collect::<Vec<_>>());
        assert!("4/4".parse::<Shard>().is_err() && "1/0".parse::<Shard>().is_err() && "x".parse::<Shard>().is_err());
    }

    #[test]
    fn invalid_points_and_grids_are_named() {
        // exit_z above entry_z is refused by the config's validation, naming the point.
        let g = grid("\"pairs.exit_z\" = [0.5, 9.0]\n").unwrap();
        let e = g.points(Shard::default()).unwrap_err().to_string();
        assert!(e.starts_with("point 1 (pairs.exit_z=9.0)"), "{e}");
        assert!(grid("").unwrap_err().to_string().contains("[params] is empty"));
        assert!(grid("\"pairs..x\" = [1]\n").is_err());
        assert!(grid("\"pairs.entry_z\" = []\n").is_err());
        let e = grid("\"pairs.nope\" = [1]\n").unwrap().points(Shard::default()).unwrap_err().to_string();
        assert!(e.contains("nope"), "{e}");
    }

    #[test]
    fn the_seed_axis_varies_the_data_not_the_config() {
        let g = grid("\"data.seed\" = [3, 7]\n\"pairs.entry_z\" = [1.5, 2.0]\n").unwrap();
        let pts = g.points(Shard::default()).unwrap();
        let got: Vec<_> = pts.iter().map(|p| (p.seed, p.config.pairs.entry_z)).collect();
        assert_eq!(got, [(Some(3), 1.5), (Some(3), 2.0), (Some(7), 1.5), (Some(7), 2.0)]);
        assert_eq!(pts[2].label(), "data.seed=7;pairs.entry_z=1.5");
        assert_eq!(grid("\"pairs.entry_z\" = [1.5]\n").unwrap().points(Shard::default()).unwrap()[0].seed, None);
        for bad in ["-1", "1.5", "\"x\""] {
            let e = grid(&format!("\"data.seed\" = [{bad}]\n")).unwrap().points(Shard::default()).unwrap_err();
            assert!(e.to_string().contains("data.seed"), "{e}");
        }
    }

    #[test]
    fn threads_honour_the_flag_then_slurm_then_the_machine() {
        assert_eq!(threads(Some(3), Some("1")).unwrap(), 3);
        assert_eq!(threads(None, Some("1")).unwrap(), 1);
        assert_eq!(threads(None, Some(" 8 ")).unwrap(), 8);
        assert!(threads(None, None).unwrap() >= 1);
        for bad in ["0", "x", ""] {
            let e = threads(None, Some(bad)).unwrap_err().to_string();
            assert!(e.contains("SLURM_CPUS_PER_TASK"), "{e}");
        }
        assert!(threads(Some(0), None).is_err());
        assert!(threads(Some(MAX_THREADS + 1), None).unwrap_err().to_string().contains("--threads 4097"));
        assert!(threads(None, Some("9223372036854775808")).is_err());
    }

    #[test]
    fn run_keeps_point_order() {
        let g = grid("\"pairs.entry_z\" = [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]\n").unwrap();
        let pts = g.points(Shard::default()).unwrap();
        let out = run(&pts, |p| p.config.pairs.entry_z);
        assert_eq!(out, [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]);
    }
}
