"""Coverage of medseg's confidence intervals by simulation (issue 23).

For each scenario, ``--cohorts`` cohorts of ``--n`` cases are drawn with a fixed seed from a
distribution whose mean is known; each cohort gets the interval of
:func:`medseg.evaluation.intervals.mean_ci` for every method. Reported:

* ``coverage``: fraction of cohorts whose two-sided 95% interval covers the true mean;
* ``low>truth``: fraction whose lower bound lies above the truth (nominal 2.5%); for a paired
  difference whose truth sits exactly on the non-inferiority margin, this is the rate at which
  non-inferiority is wrongly declared.

Scenarios: ``dice``: symmetric Dice-like values, Normal(0.85, 0.05); ``dice+fail``: the same
with 10% failure cases (Dice ~ Uniform(0, 0.3)); ``diff``: a paired difference B - A,
Normal(-0.02, 0.03), the margin being 0.02 (truth on the margin); ``diff+fail``: the
same with 10% of cases differing by Normal(-0.1, 0.1) (and the margin at the mixture's mean).

    python bench/ci_coverage.py [--n 20] [--cohorts 1000] [--resamples 10000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from medseg.evaluation.intervals import StatsOptions, mean_ci


def _draw(kind: str, rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.normal(0.85, 0.05, n) if kind.startswith("dice") else rng.normal(-0.02, 0.03, n)
    if kind.endswith("fail"):
        fail = rng.random(n) < 0.1
        x[fail] = rng.uniform(0.0, 0.3, fail.sum()) if kind.startswith("dice") \
            else rng.normal(-0.1, 0.1, fail.sum())
    return x


TRUTH = {"dice": 0.85, "dice+fail": 0.9 * 0.85 + 0.1 * 0.15, "diff": -0.02,
         "diff+fail": 0.9 * -0.02 + 0.1 * -0.1}


def coverage(kind: str, method: str, n: int, cohorts: int, resamples: int,
             seed: int = 20260523) -> tuple[float, float]:
    """(two-sided coverage, rate of the lower bound above the truth)."""
    rng = np.random.default_rng(seed)
    opts = StatsOptions(ci_method=method, resamples=resamples, min_n=2)
    truth = TRUTH[kind]
    cover = above = 0
    for i in range(cohorts):
        x = _draw(kind, rng, n)
        ci = mean_ci(x, opts.replace(seed=i))
        cover += ci["ci_low"] <= truth <= ci["ci_high"]
        above += ci["ci_low"] > truth
    return cover / cohorts, above / cohorts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[20])
    ap.add_argument("--cohorts", type=int, default=1000)
    ap.add_argument("--resamples", type=int, default=10_000)
    ap.add_argument("--methods", nargs="+", default=["bca", "percentile", "t"])
    ap.add_argument("--kinds", nargs="+", default=list(TRUTH))
    args = ap.parse_args()
    print(f"{'scenario':<10} {'n':>3} {'method':<10} {'coverage':>8} {'low>truth':>9}  seconds")
    for n in args.n:
        for kind in args.kinds:
            for method in args.methods:
                t0 = time.perf_counter()
                cov, above = coverage(kind, method, n, args.cohorts, args.resamples)
                print(f"{kind:<10} {n:>3} {method:<10} {cov:8.3f} {above:9.3f}  "
                      f"{time.perf_counter() - t0:.1f}", flush=True)


if __name__ == "__main__":
    main()
