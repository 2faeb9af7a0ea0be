"""Interactive evaluation: a simulated user clicks until the mask agrees with the reference.

The protocol of the interactive-segmentation literature (DeepGrow, RITM, SAM-Med3D): the first
click goes to the centre of the object (:func:`medseg.prompts.simulate.first_click`), each next
one to the centre of the largest error of the current mask, positive in a missed part and
negative in a false one (:func:`~medseg.prompts.simulate.next_click`), up to ``clicks`` clicks
(default 10). The model sees every click so far (and its previous mask, when it refines one)
through :class:`medseg.engine.interactive.PromptSession`.

With ``first="random"`` the first click goes to a voxel of the object drawn uniformly
(:func:`~medseg.prompts.simulate.random_click`, as SAM-Med3D's evaluation draws it; seeded per
object from ``seed``, the case and the class, so a rerun clicks the same voxels); the next
clicks are as above. Most of an object's voxels lie near its boundary, so this first click is
harder than the centre.

With ``pick_answer``, where the model offers several answers to a click (``info.answers``),
the simulated user looks at every answer to the first click and keeps the one closest to the
reference, as a user picks among SAM's three masks; the later clicks are answered with the
model's first answer, refining the mask picked (:class:`PromptSession` does so). This is
another protocol than the default one (the user does more than click): report it apart. The
first click's seconds then count every answer looked at.

Per object (one class of one case; a class is one label value of the reference, or the union
of several, as :class:`~medseg.evaluation.classes.ClassGroups` gives them):

* Dice after every click (the mask is boolean on the image's own grid, so it is the plain
  voxel Dice; :func:`~medseg.evaluation.metrics.overlap_from_counts`) and the wall time of
  each click (what a user waits: the segmenter's whole call);
* ``dice@k`` for k in ``dice_at`` (default 1, 3, 5, 10). When the mask equals the reference
  before ``clicks`` clicks there is no error left to click on: the simulation stops and the
  later Dice values are that last one (1.0);
* ``noc@85`` / ``noc@90``: the number of clicks after which Dice first reaches the target.
  Never reached within ``clicks``: counted as ``clicks`` (capped, as RITM's
  ``compute_noc_metric`` and the papers after it count NoC@85/90), with ``reached`` False, so
  that the mean NoC stays comparable with theirs; the summary counts these failures apart
  (``nof``; RITM's NoF counts NoC == max clicks, which also takes an object reached exactly
  at the last click, so ours is never larger).

Summaries per class: :func:`medseg.evaluation.stats.describe` of every figure (mean, spread,
and the CI of the mean by :mod:`medseg.evaluation.intervals`: none below its ``min_n``).
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medseg.engine.interactive import PromptSession
from medseg.engine.segmenter import Segmenter
from medseg.errors import InputError, MedsegError
from medseg.evaluation.classes import ClassGroups
from medseg.evaluation.intervals import StatsOptions
from medseg.evaluation.metrics import overlap_from_counts
from medseg.evaluation.stats import describe
from medseg.prompts.simulate import first_click, next_click, random_click
from medseg.prompts.types import Point
from medseg.volume import LabelMap, Volume

DEFAULT_CLICKS = 10
DICE_AT = (1, 3, 5, 10)
#: where the first click may go (:class:`ClickProtocol`), as a results file describes it
FIRST_CLICKS = {"centre": "centre of the object (farthest from its boundary, mm)",
                "random": "a voxel of the object drawn uniformly (seeded per object)"}
NOC_TARGETS = (0.85, 0.90)
NOC_RULE = ("NoC@T = clicks until Dice >= T; an object that never reaches T within the click "
            "budget counts as the budget (capped, as RITM and SAM-Med3D count) and is counted "
            "in nof@T")


@dataclass(frozen=True)
class ClickProtocol:
    """How many clicks, and at which points the Dice and NoC figures are taken."""

    clicks: int = DEFAULT_CLICKS
    dice_at: tuple[int, ...] = DICE_AT
    noc_targets: tuple[float, ...] = NOC_TARGETS
    #: the user picks the best of the model's answers to the first click (module docstring)
    pick_answer: bool = False
    #: where the first click goes: ``centre`` (the object's deepest voxel) or ``random``
    first: str = "centre"
    #: the seed of ``random`` first clicks
    seed: int = 0

    def __post_init__(self) -> None:
        if self.clicks < 1:
            raise MedsegError(f"clicks must be at least 1, not {self.clicks}")
        bad = [k for k in self.dice_at if not 1 <= k <= self.clicks]
        if bad:
            raise MedsegError(f"Dice after {', '.join(map(str, bad))} clicks: outside 1.."
                              f"{self.clicks} clicks")
        if any(not 0 < t <= 1 for t in self.noc_targets):
            raise MedsegError("NoC targets must be Dice values in (0, 1]")
        if self.first not in FIRST_CLICKS:
            raise MedsegError(f"first click {self.first!r}: one of {', '.join(FIRST_CLICKS)}")

    def record(self) -> dict[str, Any]:
        """The protocol as a results file records it (what a rerun must match to merge)."""
        return {"clicks": self.clicks, "dice_at": list(self.dice_at),
                "pick_answer": self.pick_answer, "first": self.first, "seed": self.seed,
                "noc_targets": list(self.noc_targets), "first_click": FIRST_CLICKS[self.first],
                "next_click": "centre of the largest error region, positive if missed",
                "noc_rule": NOC_RULE}

    @property
    def figures(self) -> list[str]:
        """Names of the per-object figures: ``dice@1`` ..., ``noc@85`` ..., ``s_per_click``."""
        return ([f"dice@{k}" for k in self.dice_at]
                + [noc_name(t) for t in self.noc_targets] + ["s_per_click"])


def noc_name(target: float) -> str:
    """``noc@85`` for 0.85."""
    return f"noc@{100 * target:g}"


def dice_of(mask: np.ndarray, reference: np.ndarray) -> float:
    """Dice of two boolean masks on one grid (1.0 when both are empty)."""
    tp = int(np.count_nonzero(mask & reference))
    fp = int(np.count_nonzero(mask)) - tp
    fn = int(np.count_nonzero(reference)) - tp
    return overlap_from_counts(tp, fp, fn, 0, empty_score=1.0)["dice"]


@dataclass
class ObjectTrace:
    """One object (a class of one case) clicked on: every click, the Dice and seconds after it."""

    case: str
    name: str
    values: tuple[int, ...]
    clicks: list[Point] = field(default_factory=list)
    dice: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    voxels: int = 0
    #: the model's answer the clicks were given with (0: its first; see ``pick_answer``)
    answer: int = 0

    @property
    def stopped_perfect(self) -> bool:
        """The mask equalled the reference, so no further click could be placed."""
        return bool(self.dice) and self.dice[-1] == 1.0

    def dice_after(self, k: int) -> float:
        """Dice after ``k`` clicks (the last value when the simulation stopped earlier)."""
        return self.dice[min(k, len(self.dice)) - 1]

    def noc(self, target: float, cap: int) -> tuple[int, bool]:
        """Clicks until Dice >= ``target``, and whether it was reached (else ``cap``)."""
        for i, d in enumerate(self.dice[:cap]):
            if d >= target:
                return i + 1, True
        return cap, False

    def figures(self, protocol: ClickProtocol) -> dict[str, Any]:
        out: dict[str, Any] = {f"dice@{k}": self.dice_after(k) for k in protocol.dice_at}
        for t in protocol.noc_targets:
            n, reached = self.noc(t, protocol.clicks)
            out[noc_name(t)], out[f"{noc_name(t)}_reached"] = n, reached
        out["s_per_click"] = float(np.mean(self.seconds)) if self.seconds else math.nan
        return out


def class_masks(reference: np.ndarray, classes: Mapping[int, str] | ClassGroups | None,
                names: Mapping[int, str] | None = None
                ) -> Iterator[tuple[str, tuple[int, ...], np.ndarray]]:
    """(name, label values, boolean mask) of every class of ``reference``: the ``classes``
    given (values or :class:`ClassGroups` unions), else each non-zero value present, named
    from ``names`` where they say."""
    names = dict(names or {})
    wanted: dict[int, tuple[str, tuple[int, ...]]]
    if classes is None:
        wanted = {int(v): (names.get(int(v), str(int(v))), (int(v),))
                  for v in np.unique(reference) if v != 0}
    elif isinstance(classes, ClassGroups):
        wanted = {v: (classes.names[v], tuple(classes.groups[v])) for v in classes.groups}
    else:
        wanted = {int(v): (str(n), (int(v),)) for v, n in classes.items()}
    for _, (name, values) in sorted(wanted.items()):
        yield name, values, np.isin(reference, values)


def click_object(segmenter: Segmenter, image: Volume, reference: np.ndarray,
                 protocol: ClickProtocol, *, case: str = "", name: str = "",
                 values: tuple[int, ...] = (), where: str = "input",
                 on_click: Callable[[int], None] | None = None) -> ObjectTrace:
    """Simulate the user on one object: ``reference`` is its boolean mask on ``image``'s grid.
    ``on_click(n)`` is told after each click how many clicks it stood for (the last one also
    counts the clicks left unused when the mask became exact)."""
    reference = np.asarray(reference, bool)
    if not reference.any():
        raise InputError(where, f"the reference of {name or 'the object'} is empty: nothing to "
                                "click on")
    trace = ObjectTrace(case, name, values, voxels=int(np.count_nonzero(reference)))
    session = PromptSession(segmenter, image, where)
    spacing = image.spacing
    click: Point | None = first_click(reference, spacing) if protocol.first == "centre" \
        else random_click(reference, _object_rng(protocol.seed, case, name))
    while click is not None and len(trace.clicks) < protocol.clicks:
        start = time.perf_counter()
        mask = session.add_point(click.position, click.positive)
        if protocol.pick_answer and not trace.clicks and session.answers > 1:
            mask = _pick(session, mask, reference)
            trace.answer = session.answer
        trace.seconds.append(time.perf_counter() - start)
        trace.clicks.append(click)
        trace.dice.append(dice_of(mask, reference))
        click = next_click(mask, reference, spacing)
        if on_click is not None:
            done = click is None or len(trace.clicks) == protocol.clicks
            on_click(protocol.clicks - len(trace.clicks) + 1 if done else 1)
    return trace


def _object_rng(seed: int, case: str, name: str) -> np.random.Generator:
    """The generator of one object's random first click: the same for the same seed, case and
    class in every run."""
    return np.random.default_rng([seed, zlib.crc32(f"{case}\0{name}".encode())])


def _pick(session: PromptSession, mask: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The session answering its first click with the answer closest to ``reference``
    (the first of equals); its mask. Each answer is one step of the session, so undoing the
    later ones goes back to the best without running the model again."""
    scores = [dice_of(mask, reference)]
    for answer in range(1, session.answers):
        scores.append(dice_of(session.choose(answer), reference))
    for _ in range(len(scores) - 1 - int(np.argmax(scores))):
        session.undo()
    return session.mask


def click_case(segmenter: Segmenter, image: Volume, reference: LabelMap,
               protocol: ClickProtocol, classes: Mapping[int, str] | ClassGroups | None = None,
               *, case: str = "", names: Mapping[int, str] | None = None,
               where: str = "input", on_click: Callable[[int], None] | None = None
               ) -> list[ObjectTrace]:
    """Every class of one case, each clicked on from scratch (a fresh session)."""
    traces = []
    for name, values, mask in class_masks(reference.data, classes, names):
        if not mask.any():
            continue  # a named class absent from this case: nothing to click on
        traces.append(click_object(segmenter, image, mask, protocol, case=case, name=name,
                                   values=values, where=where, on_click=on_click))
    return traces


# ---- rows and summaries ---------------------------------------------------------------------
CLICK_COLUMNS = ("case", "class", "labels", "click", "positive", "i", "j", "k", "dice",
                 "seconds")


def click_rows(traces: Sequence[ObjectTrace]) -> list[dict[str, Any]]:
    """One row per click: where it went, whether positive, the Dice and seconds after it."""
    rows = []
    for t in traces:
        for n, (p, d, s) in enumerate(zip(t.clicks, t.dice, t.seconds, strict=True), start=1):
            pos: list[int | None] = [round(c) for c in p.position]
            pos += [None] * (3 - len(pos))
            rows.append({"case": t.case, "class": t.name, "labels": _values_text(t.values),
                         "click": n, "positive": p.positive, "i": pos[0], "j": pos[1],
                         "k": pos[2], "dice": d, "seconds": s})
    return rows


def case_columns(protocol: ClickProtocol) -> list[str]:
    nocs = [c for t in protocol.noc_targets for c in (noc_name(t), f"{noc_name(t)}_reached")]
    return ["case", "class", "labels", "voxels", "clicks_made", "stopped_perfect",
            *(f"dice@{k}" for k in protocol.dice_at), *nocs, "s_per_click", "answer"]


def case_rows(traces: Sequence[ObjectTrace], protocol: ClickProtocol) -> list[dict[str, Any]]:
    """One row per object: its Dice@k, NoC (and whether reached) and seconds per click."""
    return [{"case": t.case, "class": t.name, "labels": _values_text(t.values),
             "voxels": t.voxels, "clicks_made": len(t.clicks),
             "stopped_perfect": t.stopped_perfect, **t.figures(protocol),
             "answer": t.answer + 1} for t in traces]


def summarize(traces: Sequence[ObjectTrace], protocol: ClickProtocol,
              stats: StatsOptions | None = None) -> dict[str, Any]:
    """Per class (in first-seen order): n objects, :func:`describe` of every figure, the
    failures per NoC target (``nof@85``: never reached) and the median seconds per click."""
    out: dict[str, Any] = {}
    for name in dict.fromkeys(t.name for t in traces):
        mine = [t for t in traces if t.name == name]
        figures = [t.figures(protocol) for t in mine]
        cases = [t.case for t in mine]
        item: dict[str, Any] = {"labels": _values_text(mine[0].values), "n": len(mine),
                                "metrics": {}}
        for key in protocol.figures:
            item["metrics"][key] = describe([f[key] for f in figures], stats, cases=cases)
        for t in protocol.noc_targets:
            item[f"nof@{100 * t:g}"] = sum(not f[f"{noc_name(t)}_reached"] for f in figures)
        seconds = [s for t in mine for s in t.seconds]
        item["median_s_per_click"] = float(np.median(seconds)) if seconds else math.nan
        item["clicks_timed"] = len(seconds)
        out[name] = item
    return out


def _values_text(values: Sequence[int]) -> str:
    return ",".join(map(str, values))
