"""Sample size before the study (``medseg plan-study``): how many cases a decision needs.

Two goals, both "the lower confidence bound must clear a threshold" (for a lower-is-better
metric, the upper bound must stay below it):

* **non-inferiority** of model B to A at a margin ``m``: the paired differences ``d = B - A``
  have an assumed true mean ``delta`` (default 0) and SD ``sigma``; success is
  ``ci_low(d) > -m``, so the distance to clear is ``delta + m``;
* **a ci_low target** ``T`` for one model's mean: assumed true mean ``mu``, SD ``sigma``;
  success is ``ci_low > T``, the distance is ``mu - T``.

Per goal (:func:`plan`):

* ``n_normal``: the closed form ``ceil(((z_{1-alpha} + z_{power}) sigma / distance)^2)``
  (normal, known SD), ``alpha`` the one-sided tail of the interval (0.025 for a two-sided
  95% interval);
* ``n_t``: the smallest n whose exact power under the t-interval reaches ``power``
  (noncentral t: ``P(T'_{n-1}(distance sqrt(n) / sigma) > t_{1-alpha, n-1})``), never below the
  study's minimum n;
* ``n_simulated`` (with pilot values): cohorts of n cases are drawn with replacement from the
  pilot values, shifted so that their population mean is the assumed truth, and each gets the
  study's own interval (:func:`medseg.evaluation.intervals.mean_ci`, same method, level and
  minimum n; ``resamples`` per interval); the power is the share of cohorts whose bound clears
  the threshold, and n is found by bisection. Its Monte-Carlo error is reported.

:func:`protocol_paragraph` writes the result as a paragraph for the study protocol.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats as sps

from medseg.evaluation.intervals import StatsOptions, mean_ci

MAX_N = 5000


@dataclass(frozen=True)
class PlanGoal:
    """What the study must show (see the module docstring)."""

    kind: str  # "non_inferiority" or "ci_low"
    threshold: float  # the margin m, or the target T
    truth: float  # assumed true mean difference (delta) or mean (mu)
    higher_is_better: bool = True

    @property
    def bound_threshold(self) -> float:
        """The value the CI bound has to clear."""
        if self.kind == "non_inferiority":
            return -self.threshold if self.higher_is_better else self.threshold
        return self.threshold

    @property
    def distance(self) -> float:
        """How far the truth lies on the good side of the bound's threshold."""
        d = self.truth - self.bound_threshold
        return d if self.higher_is_better else -d


@dataclass
class Plan:
    goal: PlanGoal
    sd: float
    power: float
    alpha: float
    options: StatsOptions
    n_normal: int
    n_t: int
    n_simulated: int | None = None
    simulated_power: float | None = None
    simulated_power_se: float | None = None
    simulations: int = 0
    pilot_n: int = 0
    notes: list[str] = field(default_factory=list)


def closed_form_n(sd: float, distance: float, alpha: float, power: float) -> int:
    """``ceil(((z_{1-alpha} + z_power) sd / distance)^2)``."""
    z = sps.norm.ppf(1 - alpha) + sps.norm.ppf(power)
    return max(2, math.ceil((z * sd / distance) ** 2))


def t_power(n: int, sd: float, distance: float, alpha: float) -> float:
    """Exact power of the one-sided t-interval bound at n cases."""
    ncp = distance * math.sqrt(n) / sd
    return float(sps.nct.sf(sps.t.ppf(1 - alpha, n - 1), n - 1, ncp))


def t_based_n(sd: float, distance: float, alpha: float, power: float, min_n: int = 2) -> int:
    n = max(2, min_n)
    while t_power(n, sd, distance, alpha) < power:
        n += 1
        if n > MAX_N:
            raise ValueError(f"more than {MAX_N} cases would be needed")
    return n


def simulated_power(pilot: np.ndarray, n: int, goal: PlanGoal, options: StatsOptions,
                    simulations: int, seed: int) -> float:
    """Share of simulated cohorts of n pilot-like cases whose bound clears the threshold."""
    rng = np.random.default_rng(seed)
    x = pilot - pilot.mean() + goal.truth
    wins = 0
    for i in range(simulations):
        cohort = x[rng.integers(0, x.size, n)]
        ci = mean_ci(cohort, options.replace(seed=seed + i))
        bound = ci["ci_low"] if goal.higher_is_better else ci["ci_high"]
        if bound is None:
            continue
        wins += bound > goal.bound_threshold if goal.higher_is_better \
            else bound < goal.bound_threshold
    return wins / simulations


def plan(goal: PlanGoal, *, sd: float | None = None, pilot: Sequence[float] | None = None,
         power: float = 0.8, options: StatsOptions | None = None, simulations: int = 400,
         resamples: int = 1000, seed: int = 0) -> Plan:
    """The sample sizes of the module docstring (``pilot`` values give the SD and the
    simulation; ``sd`` alone gives the normal and t answers)."""
    opts = (options or StatsOptions()).replace(resamples=resamples)
    values = None
    if pilot is not None:
        values = np.asarray(pilot, dtype=float)
        values = values[np.isfinite(values)]
        if values.size < 3:
            raise ValueError("the pilot needs at least 3 finite values")
        if sd is None:
            sd = float(values.std(ddof=1))
    if sd is None or not sd > 0:
        raise ValueError("an SD above 0 is needed (a pilot or --sd)")
    if not goal.distance > 0:
        raise ValueError("the assumed truth lies on the wrong side of the threshold: no n "
                         "gives the study the power it asks for")
    alpha = opts.tail
    out = Plan(goal=goal, sd=sd, power=power, alpha=alpha, options=opts,
               n_normal=closed_form_n(sd, goal.distance, alpha, power),
               n_t=t_based_n(sd, goal.distance, alpha, power, opts.min_n))
    if values is None:
        return out
    out.pilot_n, out.simulations = int(values.size), simulations
    lo, hi = max(opts.min_n, 2), max(opts.min_n, 2 * out.n_t)
    cache: dict[int, float] = {}

    def pw(n: int) -> float:
        if n not in cache:
            cache[n] = simulated_power(values, n, goal, opts, simulations, seed)
        return cache[n]

    while pw(hi) < power:
        lo, hi = hi, 2 * hi
        if hi > MAX_N:
            raise ValueError(f"more than {MAX_N} cases would be needed")
    if pw(lo) >= power:
        hi = lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if pw(mid) >= power:
            hi = mid
        else:
            lo = mid
    out.n_simulated = hi
    out.simulated_power = pw(hi)
    out.simulated_power_se = math.sqrt(out.simulated_power * (1 - out.simulated_power)
                                       / simulations)
    if opts.ci_method != "t" and values.size < 20:
        out.notes.append(f"the pilot has only {values.size} cases: its spread and shape are "
                         "uncertain, so treat the simulated n as a rough guide")
    return out


def protocol_paragraph(p: Plan, *, metric: str = "the metric", source: str = "") -> str:
    """The plan as a paragraph for the study protocol."""
    g = p.goal
    level = f"{100 * p.options.ci_level:g}% {'one-sided ' if p.options.one_sided else ''}"
    method = {"bca": "BCa bootstrap interval (with Hesterberg's small-sample expansion)",
              "percentile": "percentile bootstrap interval", "t": "t-interval"}[
        p.options.ci_method]
    side = "lower" if g.higher_is_better else "upper"
    if g.kind == "non_inferiority":
        what = (f"non-inferiority of model B to model A on {metric} with a margin of "
                f"{g.threshold:g} (B is declared non-inferior when the {side} bound of the "
                f"{level}{method} of the mean paired difference B - A lies "
                f"{'above' if g.higher_is_better else 'below'} {g.bound_threshold:g}), "
                f"assuming a true mean difference of {g.truth:g}")
    else:
        what = (f"a {side} confidence bound of the mean {metric} "
                f"{'above' if g.higher_is_better else 'below'} {g.threshold:g} (the {side} "
                f"bound of the {level}{method}), assuming a true mean of {g.truth:g}")
    sd_from = (f"the SD of {p.pilot_n} pilot cases{f' ({source})' if source else ''}"
               if p.pilot_n else "a stated SD")
    text = (f"Sample size. The study is planned to show {what}, with {100 * p.power:g}% "
            f"power at a one-sided error of {100 * p.alpha:g}%. With an SD of {p.sd:.4g} "
            f"({sd_from}), the normal closed form gives {p.n_normal} cases and the exact "
            f"power of the t-interval {p.n_t} cases")
    if p.n_simulated is not None:
        text += (f"; simulating {p.simulations} cohorts per candidate size, drawn from the "
                 f"pilot values shifted to the assumed truth and analysed with the study's "
                 f"own interval, gives {p.n_simulated} cases (simulated power "
                 f"{p.simulated_power:.3f} +- {p.simulated_power_se:.3f})")
    needed = max(p.n_t, p.n_simulated or 0, p.options.min_n)
    text += (f". The study therefore enrols at least {needed} evaluable cases (no decision is "
             f"made below {p.options.min_n}), plus an allowance for cases that fail or "
             "cannot be scored, fixed before any result is seen.")
    for note in p.notes:
        text += f" Note: {note}."
    return text


def describe_plan(p: Plan) -> dict[str, Any]:
    """The plan as a JSON-ready dict."""
    return {"goal": p.goal.kind, "threshold": p.goal.threshold, "truth": p.goal.truth,
            "higher_is_better": p.goal.higher_is_better, "sd": p.sd, "power": p.power,
            "alpha_one_sided": p.alpha, "n_normal": p.n_normal, "n_t": p.n_t,
            "n_simulated": p.n_simulated, "simulated_power": p.simulated_power,
            "simulated_power_se": p.simulated_power_se, "simulations": p.simulations,
            "pilot_n": p.pilot_n, "intervals": p.options.record()}
