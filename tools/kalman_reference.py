#!/usr/bin/env python3
"""Independent pykalman reference vectors for `statarb::signal::kalman::Kalman`.

Regenerate (from the repository root; pykalman 0.11.2, numpy 2.4.6, scipy 1.17.1 and
Python 3.11.7 produced the committed fixtures):

    pip install pykalman==0.11.2
    python3 tools/kalman_reference.py

Checked by `cargo test --test kalman_pykalman`.

Model (E. Chan, *Algorithmic Trading*, 2013, Example 3.3): state [beta, alpha] is a
random walk (F = I, Vw = delta/(1-delta) * I), observation y_t = [x_t, 1] [beta, alpha]'
+ noise of variance Ve. pykalman's `KalmanFilter.filter` treats the initial mean and
covariance as the prior of the FIRST observation (no prediction before it), and
predicts with P + Vw before every later one; the Rust filter uses the same timing.

Parameters (all fixtures):
    delta  = 1e-4
    ve     = 1e-3
    p0     = 1.0     (initial covariance p0 * I)
    beta0  = 0.0
    alpha0 = 0.0
    seed   = 20130503  (numpy.random.default_rng, synthetic pair only)

Outputs, all written by this script:
    tests/data/kalman_pykalman.csv         synthetic pair, 3000 steps, beta 1.5 -> 0.8
                                           at step 1500
    tests/data/kalman_pykalman.params.json the parameters above and the generator's
    tests/data/chan_ewa_ewc.csv            first 300 rows of Chan's EWA/EWC closes,
                                           copied byte for byte from
                                           ../shared/data/chan/EWA_EWC.csv when that
                                           file exists (else the committed copy is read)
    tests/data/chan_ewa_ewc_pykalman.csv   the filter over it, y = EWC, x = EWA

Each output CSV has the header `x,y,beta,alpha,e,q,z` and one row per step, floats in
shortest round-trip form (Python `repr`): beta and alpha are the filtered means after
step t; e = y_t - [x_t, 1] m_pred and Q = [x_t, 1] P_pred [x_t, 1]' + Ve come from the
PREDICTED state (t = 0: the prior; t > 0: the filtered mean of t-1 and its covariance
plus Vw); z = e / sqrt(Q).
"""

import csv
import json
import os
import sys

import numpy as np
import pykalman
from pykalman import KalmanFilter

DELTA = 1e-4
VE = 1e-3
P0 = 1.0
BETA0 = 0.0
ALPHA0 = 0.0
SEED = 20130503

# Synthetic pair.
N = 3000
BREAK_AT = N // 2
BETA_BEFORE = 1.5
BETA_AFTER = 0.8
ALPHA_TRUE = 2.0
X_LEVEL = 50.0
X_REVERSION = 0.02  # per step pull of x back to X_LEVEL
X_STEP_SD = 0.5
NOISE_SD = 0.05

# Chan's ETF pair.
CHAN_ROWS = 300
CHAN_Y = "EWC"
CHAN_X = "EWA"

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")
CHAN_SOURCE = os.path.join(ROOT, "..", "shared", "data", "chan", "EWA_EWC.csv")
CHAN_SLICE = os.path.join(DATA, "chan_ewa_ewc.csv")


def synthetic_pair():
    """x: a mean-reverting random walk around 50; y = alpha + beta_t x + noise, with
    beta switching from 1.5 to 0.8 at the middle."""
    rng = np.random.default_rng(SEED)
    steps = rng.normal(0.0, X_STEP_SD, N)
    noise = rng.normal(0.0, NOISE_SD, N)
    x = np.empty(N)
    level = X_LEVEL
    for t in range(N):
        level = level + X_REVERSION * (X_LEVEL - level) + steps[t]
        x[t] = level
    beta = np.where(np.arange(N) < BREAK_AT, BETA_BEFORE, BETA_AFTER)
    y = ALPHA_TRUE + beta * x + noise
    return x, y


def chan_pair():
    """The first CHAN_ROWS rows of Chan's EWA/EWC closes: (x = EWA, y = EWC)."""
    if os.path.exists(CHAN_SOURCE):
        with open(CHAN_SOURCE, "rb") as f:
            lines = f.read().splitlines(keepends=True)[: CHAN_ROWS + 1]
        with open(CHAN_SLICE, "wb") as f:
            f.writelines(lines)
    with open(CHAN_SLICE, newline="") as f:
        rows = list(csv.DictReader(f))
    if len(rows) != CHAN_ROWS:
        sys.exit(f"{CHAN_SLICE}: expected {CHAN_ROWS} rows, got {len(rows)}")
    x = np.array([float(r[CHAN_X]) for r in rows])
    y = np.array([float(r[CHAN_Y]) for r in rows])
    return x, y


def reference(x, y):
    """pykalman's filter over (x, y); returns beta, alpha, e, q, z per step."""
    n = len(x)
    vw = DELTA / (1.0 - DELTA) * np.eye(2)
    obs_mat = np.stack([x, np.ones(n)], axis=1).reshape(n, 1, 2)
    kf = KalmanFilter(
        n_dim_obs=1,
        n_dim_state=2,
        transition_matrices=np.eye(2),
        observation_matrices=obs_mat,
        initial_state_mean=np.array([BETA0, ALPHA0]),
        initial_state_covariance=P0 * np.eye(2),
        observation_covariance=np.array([[VE]]),
        transition_covariance=vw,
        transition_offsets=np.zeros(2),
        observation_offsets=np.zeros(1),
    )
    means, covs = kf.filter(y.reshape(n, 1))

    # The predicted state of each step, rebuilt from the filtered ones.
    pred_means = np.empty((n, 2))
    pred_covs = np.empty((n, 2, 2))
    pred_means[0] = [BETA0, ALPHA0]
    pred_covs[0] = P0 * np.eye(2)
    pred_means[1:] = means[:-1]
    pred_covs[1:] = covs[:-1] + vw

    e = np.empty(n)
    q = np.empty(n)
    for t in range(n):
        h = obs_mat[t]  # (1, 2)
        e[t] = y[t] - (h @ pred_means[t])[0]
        q[t] = (h @ pred_covs[t] @ h.T)[0, 0] + VE
    z = e / np.sqrt(q)
    return means[:, 0], means[:, 1], e, q, z


def write(path, x, y):
    beta, alpha, e, q, z = reference(x, y)
    if not all(np.isfinite(v).all() for v in (beta, alpha, e, q, z)):
        sys.exit(f"{path}: non-finite reference values")
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["x", "y", "beta", "alpha", "e", "q", "z"])
        for row in zip(x, y, beta, alpha, e, q, z):
            w.writerow([repr(float(v)) for v in row])
    print(f"wrote {os.path.relpath(path, ROOT)}: {len(x)} rows, "
          f"final beta {beta[-1]:.6f} alpha {alpha[-1]:.6f}")


def main():
    os.makedirs(DATA, exist_ok=True)
    write(os.path.join(DATA, "kalman_pykalman.csv"), *synthetic_pair())
    write(os.path.join(DATA, "chan_ewa_ewc_pykalman.csv"), *chan_pair())
    params = {
        "delta": DELTA,
        "ve": VE,
        "p0": P0,
        "beta0": BETA0,
        "alpha0": ALPHA0,
        "seed": SEED,
        "n": N,
        "break_at": BREAK_AT,
        "beta_before": BETA_BEFORE,
        "beta_after": BETA_AFTER,
        "alpha_true": ALPHA_TRUE,
        "x_level": X_LEVEL,
        "x_reversion": X_REVERSION,
        "x_step_sd": X_STEP_SD,
        "noise_sd": NOISE_SD,
        "chan_rows": CHAN_ROWS,
        "chan_y": CHAN_Y,
        "chan_x": CHAN_X,
        "pykalman_version": pykalman.__version__,
        "numpy_version": np.__version__,
    }
    with open(os.path.join(DATA, "kalman_pykalman.params.json"), "w") as f:
        json.dump(params, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
