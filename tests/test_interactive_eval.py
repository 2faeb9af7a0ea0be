"""Interactive evaluation (issue 22, part 6): the simulated-click protocol against a promptable
model. The model is tests/plugin_regiongrow.py (region growing from the clicks, nothing
learned; a negative click takes the voxels nearer to it than to every positive one), loaded
through the model-format hook like any format; the volumes are written here
with known geometry, so every Dice and NoC below follows from it."""

import csv
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medseg.cli import main
from medseg.engine.segmenter import Segmenter
from medseg.errors import InputError, MedsegError
from medseg.evaluation.classes import parse_class_tokens
from medseg.evaluation.interactive import ClickProtocol, click_case, click_object, summarize
from medseg.evaluation.interactive_run import evaluate_interactive, pair_inputs
from medseg.evaluation.intervals import StatsOptions
from medseg.models import load_model
from medseg.models.base import InferenceSettings
from medseg.plugins import get_plugin_manager
from medseg.registry import build_registry
from medseg.volume import LabelMap, Volume
from tests import plugin_regiongrow

ROOT = Path(__file__).resolve().parent.parent
SHAPE = (40, 36, 30)
AFFINE = np.diag([0.8, 0.8, 1.5, 1.0])
A = (slice(4, 14), slice(4, 14), slice(4, 14))     # 10 x 10 x 10 = 1000 voxels, label 1
B = (slice(22, 30), slice(20, 28), slice(16, 24))  # 8 x 8 x 8 = 512 voxels, label 2


def two_blobs(value_b: float = 100.0) -> tuple[Volume, LabelMap]:
    img = np.zeros(SHAPE, np.float32)
    lab = np.zeros(SHAPE, np.uint8)
    img[A], lab[A] = 100.0, 1
    img[B], lab[B] = value_b, 2
    return Volume(img[None], AFFINE), LabelMap(lab[None], AFFINE)


@pytest.fixture
def model_dir(tmp_path):
    return plugin_regiongrow.write_model(tmp_path / "grow", tolerance=0.1)


@pytest.fixture
def registry():
    return build_registry(get_plugin_manager(plugins=[plugin_regiongrow]))


@pytest.fixture
def segmenter(model_dir, registry):
    return Segmenter(load_model(model_dir, registry), InferenceSettings(), registry)


def test_union_of_two_blobs_needs_two_clicks(segmenter):
    """Both blobs as one class: the first click lands in the larger (A), which alone gives
    Dice 2*1000/(1000+1512); the second goes to the centre of the missed blob B and the mask is
    then exact, so the simulation stops with Dice 1.0 carried to clicks 3, 5 and 10."""
    image, ref = two_blobs()
    protocol = ClickProtocol()
    ticks: list[int] = []
    (trace,) = click_case(segmenter, image, ref, protocol, parse_class_tokens(["both=1,2"]),
                          case="c1", on_click=ticks.append)
    assert ticks == [1, 9]  # the progress bar gets the 8 unused clicks with the last one
    assert trace.name == "both" and trace.values == (1, 2) and trace.voxels == 1512
    assert [p.positive for p in trace.clicks] == [True, True]
    assert all(A[i].start <= trace.clicks[0].position[i] < A[i].stop for i in range(3))
    assert all(B[i].start <= trace.clicks[1].position[i] < B[i].stop for i in range(3))
    assert trace.dice == pytest.approx([2000 / 2512, 1.0])
    figures = trace.figures(protocol)
    assert figures["dice@1"] == pytest.approx(2000 / 2512)
    assert figures["dice@3"] == figures["dice@5"] == figures["dice@10"] == 1.0
    assert (figures["noc@85"], figures["noc@85_reached"]) == (2, True)
    assert (figures["noc@90"], figures["noc@90_reached"]) == (2, True)
    assert len(trace.seconds) == 2 and all(s > 0 for s in trace.seconds)


def test_each_label_its_own_class_one_click(segmenter):
    image, ref = two_blobs()
    traces = click_case(segmenter, image, ref, ClickProtocol(), None, case="c1",
                        names={1: "big", 2: "small"})
    assert [t.name for t in traces] == ["big", "small"]
    for t in traces:
        assert t.dice == [1.0]
        assert t.figures(ClickProtocol())["noc@90"] == 1


def test_never_reached_is_capped_at_the_click_budget(segmenter):
    """Four equal, separate blobs as one class: k clicks find k blobs, Dice = 2k / (k + 4)
    (0.4, 0.667, 0.857, 1). With 3 clicks NoC@85 is 3 (reached) and NoC@90 is never reached:
    counted as 3, flagged, and counted in nof@90; with 2 clicks neither is reached."""
    img = np.zeros(SHAPE, np.float32)
    lab = np.zeros(SHAPE, np.uint8)
    for n, (x, y) in enumerate([(2, 2), (2, 20), (22, 2), (22, 20)], start=1):
        sl = (slice(x, x + 6), slice(y, y + 6), slice(10, 16))
        img[sl], lab[sl] = 100.0, n
    image, ref = Volume(img[None], AFFINE), LabelMap(lab[None], AFFINE)
    classes = parse_class_tokens(["all=1,2,3,4"])
    three = ClickProtocol(clicks=3, dice_at=(1, 3))
    (t3,) = click_case(segmenter, image, ref, three, classes, case="four")
    assert t3.dice == pytest.approx([2 / 5, 4 / 6, 6 / 7])
    f3 = t3.figures(three)
    assert (f3["noc@85"], f3["noc@85_reached"]) == (3, True)
    assert (f3["noc@90"], f3["noc@90_reached"]) == (3, False)
    two = ClickProtocol(clicks=2, dice_at=(1, 2))
    (t2,) = click_case(segmenter, image, ref, two, classes, case="four")
    f2 = t2.figures(two)
    assert (f2["noc@85"], f2["noc@85_reached"], f2["noc@90_reached"]) == (2, False, False)
    s3, s2 = summarize([t3], three)["all"], summarize([t2], two)["all"]
    assert (s3["nof@85"], s3["nof@90"]) == (0, 1)
    assert (s2["nof@85"], s2["nof@90"]) == (1, 1)
    assert s3["metrics"]["noc@90"]["mean"] == 3 and s2["metrics"]["noc@85"]["mean"] == 2


def test_negative_click_cuts_off_a_false_part(segmenter):
    """Blob A joined by a 2 x 2 bridge to a blob C of the same intensity that is not in the
    reference: the first click grows into both; the second, negative, at the centre of C,
    takes C and the half of the bridge nearer to it."""
    img = np.zeros(SHAPE, np.float32)
    lab = np.zeros(SHAPE, np.uint8)
    img[A], lab[A] = 100.0, 1
    img[14:22, 8:10, 8:10] = 100.0                    # bridge, 32 voxels
    img[22:32, 4:14, 4:14] = 100.0                    # C, 1000 voxels
    image = Volume(img[None], AFFINE)
    trace = click_object(segmenter, image, lab == 1, ClickProtocol(), name="A")
    assert trace.dice[0] == pytest.approx(2000 / (1000 + 2032))
    assert trace.clicks[1].positive is False and trace.clicks[1].position[0] >= 22
    assert trace.dice[1] > 0.98
    assert trace.dice[-1] == 1.0 and len(trace.dice) <= 4


def test_summary_means_and_ci_rule(segmenter):
    image, ref = two_blobs()
    traces = []
    for case in ("a", "b", "c"):
        traces += click_case(segmenter, image, ref, ClickProtocol(),
                             parse_class_tokens(["both=1,2"]), case=case)
    summary = summarize(traces, ClickProtocol(), StatsOptions(min_n=3))
    item = summary["both"]
    assert item["n"] == 3 and item["nof@85"] == 0
    assert item["metrics"]["dice@1"]["mean"] == pytest.approx(2000 / 2512)
    assert item["metrics"]["noc@85"]["mean"] == 2
    assert item["metrics"]["dice@1"]["ci_low"] is not None  # n = 3 >= min_n
    default = summarize(traces, ClickProtocol())             # medseg's default min_n = 10
    assert default["both"]["metrics"]["dice@1"]["ci_low"] is None
    assert default["both"]["metrics"]["dice@1"]["ci_note"] == "n < 10"


def test_empty_reference_and_non_promptable_model(segmenter, tmp_path):
    image, _ = two_blobs()
    with pytest.raises(InputError, match="empty"):
        click_object(segmenter, image, np.zeros(SHAPE, bool), ClickProtocol(), where="img")
    bundle = ROOT / "sample_data" / "models" / "brain_tissue"
    plain = Segmenter(load_model(bundle), InferenceSettings())
    with pytest.raises(MedsegError, match="takes no prompts"):
        evaluate_interactive(plain, [])


def test_random_first_clicks_are_inside_uniform_and_repeatable(segmenter):
    """``first="random"``: the first click is a voxel of the object drawn uniformly (as
    SAM-Med3D draws it), the same in every run for the same seed, case and class."""
    from medseg.prompts.simulate import random_click

    mask = np.zeros((6, 5, 4), bool)
    mask[1:4, 1:3, 1:3] = True  # 12 voxels
    rng = np.random.default_rng(0)
    counts = np.zeros(mask.shape, int)
    for _ in range(6000):
        counts[tuple(int(v) for v in random_click(mask, rng).position)] += 1
    assert counts[~mask].sum() == 0
    assert counts[mask].min() > 400 and counts[mask].max() < 600  # 500 expected each
    image, ref = two_blobs()
    blob = ref.data == 1
    runs = [click_object(segmenter, image, blob, ClickProtocol(clicks=1, dice_at=(1,),
                                                               first="random", seed=s),
                         case="c", name="A").clicks[0] for s in (3, 3, 4)]
    assert runs[0] == runs[1] and runs[0] != runs[2]
    assert all(blob[tuple(int(v) for v in c.position)] for c in runs)
    centre = click_object(segmenter, image, blob, ClickProtocol(clicks=1, dice_at=(1,)),
                          case="c", name="A").clicks[0]
    assert centre != runs[0]
    with pytest.raises(MedsegError, match="first click 'middle'"):
        ClickProtocol(first="middle")


def test_protocol_checks():
    with pytest.raises(MedsegError):
        ClickProtocol(clicks=0)
    with pytest.raises(MedsegError, match="outside"):
        ClickProtocol(clicks=3)  # Dice@5 and @10 cannot be taken after 3 clicks


# ---- files and the command line ----------------------------------------------------------
def _write(volume: Volume, path: Path, dtype=None) -> Path:
    data = volume.array[0] if dtype is None else volume.array[0].astype(dtype)
    nib.save(nib.Nifti1Image(data, volume.affine), str(path))
    return path


@pytest.fixture
def files(tmp_path, model_dir):
    image, ref = two_blobs()
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    shutil.copy(Path(plugin_regiongrow.__file__), plugins / "plugin_regiongrow.py")
    return {"image": _write(image, tmp_path / "blobs.nii.gz"),
            "ref": _write(ref, tmp_path / "blobs_ref.nii.gz"),
            "model": model_dir, "plugins": plugins, "tmp": tmp_path}


def _cli(files, *args):
    return main(["--plugins-dir", str(files["plugins"]), "evaluate-clicks",
                 "-m", str(files["model"]), "--quiet", *map(str, args)])


def test_cli_writes_clicks_cases_and_summary(files, capsys):
    out = files["tmp"] / "out"
    rc = _cli(files, files["image"], "--ref", files["ref"], "-o", out, "--labels", "both=1,2")
    assert rc == 0
    stdout = capsys.readouterr().out
    assert "both" in stdout and "NoC@85 2.00 (0 not reached)" in stdout
    with open(out / "clicks.csv") as fh:
        clicks = list(csv.DictReader(fh))
    assert [int(r["click"]) for r in clicks] == [1, 2]
    assert [r["positive"] for r in clicks] == ["True", "True"]
    assert float(clicks[0]["dice"]) == pytest.approx(2000 / 2512)
    assert float(clicks[1]["dice"]) == 1.0
    with open(out / "cases.csv") as fh:
        (case,) = list(csv.DictReader(fh))
    assert case["case"] == "blobs" and case["noc@90"] == "2" and case["dice@10"] == "1.0"
    assert case["answer"] == "1"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["protocol"]["clicks"] == 10 and summary["protocol"]["pick_answer"] is False
    assert "capped" in summary["protocol"]["noc_rule"]
    assert summary["classes"]["both"]["metrics"]["noc@85"]["mean"] == 2
    assert summary["classes"]["both"]["nof@90"] == 0
    with open(out / "summary.csv") as fh:
        rows = {r["figure"]: r for r in csv.DictReader(fh)}
    assert set(rows) >= {"dice@1", "dice@3", "dice@5", "dice@10", "noc@85", "noc@90",
                         "s_per_click"}


def test_cli_pick_answer_with_click3d_takes_the_kidney_not_the_sinus(tmp_path):
    """``--pick-answer``: the simulated user keeps the best of click3d's answers to the first
    click; on a Dataset002 training case (kidneys never a training target) whose right kidney's
    centre lies in the renal sinus fat, that is the kidney, where clicks alone give the fat."""
    data = Path(__file__).parents[1] / "sample_data" / "Dataset002_AbdomenCT"
    image = data / "imagesTr" / "abdomen_000_0000.nii.gz"
    ref = data / "labelsTr" / "abdomen_000.nii.gz"
    rows = {}
    for flag in ([], ["--pick-answer"]):
        out = tmp_path / ("pick" if flag else "plain")
        assert main(["evaluate-clicks", "-m", "click3d", str(image), "--ref", str(ref), "-o",
                     str(out), "--labels", "kidney_right=3", "--clicks", "1", "--quiet",
                     *flag]) == 0
        with open(out / "cases.csv") as fh:
            (rows[bool(flag)],) = list(csv.DictReader(fh))
        protocol = json.loads((out / "summary.json").read_text())["protocol"]
        assert protocol["pick_answer"] is bool(flag) and protocol["first"] == "centre"
    assert rows[False]["answer"] == "1" and float(rows[False]["dice@1"]) < 0.3
    assert rows[True]["answer"] != "1" and float(rows[True]["dice@1"]) >= 0.8


def test_cli_random_first_click_is_recorded_and_lands_inside(files):
    out = files["tmp"] / "random"
    assert _cli(files, files["image"], "--ref", files["ref"], "-o", out, "--labels", "A=1",
                "--first-click", "random", "--seed", "2", "--clicks", "1") == 0
    protocol = json.loads((out / "summary.json").read_text())["protocol"]
    assert protocol["first"] == "random" and protocol["seed"] == 2
    assert protocol["first_click"].startswith("a voxel of the object drawn uniformly")
    with open(out / "clicks.csv") as fh:
        (click,) = list(csv.DictReader(fh))
    ref = np.asarray(nib.load(str(files["ref"])).dataobj)
    assert ref[int(click["i"]), int(click["j"]), int(click["k"])] == 1


def test_cli_pairs_folders_by_case_name(files, tmp_path):
    images, labels = tmp_path / "imagesTs", tmp_path / "labelsTs"
    images.mkdir()
    labels.mkdir()
    shutil.copy(files["image"], images / "c7_0000.nii.gz")
    shutil.copy(files["ref"], labels / "c7.nii.gz")
    pairs = pair_inputs([images], [labels])
    assert [(c, i.name, r.name) for c, i, r in pairs] == [("c7", "c7_0000.nii.gz",
                                                            "c7.nii.gz")]
    out = tmp_path / "out2"
    assert _cli(files, images, "--ref", labels, "-o", out) == 0
    with open(out / "cases.csv") as fh:
        cases = {r["class"]: r for r in csv.DictReader(fh)}
    assert set(cases) == {"1", "2"} and cases["1"]["noc@85"] == "1"


def _one_line_error(capsys, path_part: str, problem: str) -> None:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert err.startswith("medseg: error:") and path_part in err and problem in err, err


def test_cli_bad_inputs_are_one_line_errors(files, capsys):
    tmp = files["tmp"]
    out = tmp / "bad"
    missing = tmp / "nope.nii.gz"
    assert _cli(files, files["image"], "--ref", missing, "-o", out) == 2
    _one_line_error(capsys, "nope.nii.gz", "file not found")

    ref = two_blobs()[1]
    other = _write(LabelMap(ref.array, np.diag([1.0, 1.0, 1.5, 1.0])), tmp / "shifted.nii.gz")
    assert _cli(files, files["image"], "--ref", other, "-o", out) == 2
    _one_line_error(capsys, "shifted.nii.gz", "is not on the grid of")

    empty = _write(LabelMap(np.zeros_like(ref.array), AFFINE), tmp / "empty.nii.gz")
    assert _cli(files, files["image"], "--ref", empty, "-o", out) == 2
    _one_line_error(capsys, "empty.nii.gz", "the reference is empty")

    assert _cli(files, files["image"], "--ref", files["ref"], "-o", out, "--labels", "5") == 2
    _one_line_error(capsys, "blobs_ref.nii.gz", "holds none of the classes")

    second = shutil.copy(files["image"], tmp / "second.nii.gz")
    assert _cli(files, files["image"], second, "--ref", files["ref"], "-o", out) == 2
    _one_line_error(capsys, "", "2 image(s) but 1 reference(s)")

    bundle = ROOT / "sample_data" / "models" / "brain_tissue"
    rc = main(["evaluate-clicks", "-m", str(bundle), str(files["image"]), "--ref",
               str(files["ref"]), "-o", str(out), "--quiet"])
    assert rc == 2
    _one_line_error(capsys, "BrainTissue", "takes no prompts")
    assert not out.exists()  # nothing half-written


def test_real_nodule_clicks_land_in_the_lesion(registry, tmp_path):
    """The real CT lung nodule of sample_data/real_lesions (pyradiomics lung1): the first click
    lies inside the hand-drawn label, every click is on the image, and the figures follow from
    the per-click Dice (region growing within 10 % of the intensity range reaches it)."""
    model = load_model(plugin_regiongrow.write_model(tmp_path / "g", tolerance=0.1), registry)
    grow = Segmenter(model, InferenceSettings(), registry)
    folder = ROOT / "sample_data" / "real_lesions"
    (pair,) = pair_inputs([folder / "lung1_nodule.nii.gz"], [folder / "lung1_nodule_label.nii.gz"])
    protocol = ClickProtocol(clicks=3, dice_at=(1, 3))
    result = evaluate_interactive(grow, [pair], protocol, {1: "nodule"}, progress=False)
    (trace,) = result.traces
    label = nib.load(str(pair[2])).get_fdata() > 0
    assert trace.voxels == int(label.sum()) == 837
    assert label[tuple(int(c) for c in trace.clicks[0].position)]
    assert all(0 <= c < n for p in trace.clicks for c, n in zip(p.position, label.shape,
                                                                strict=True))
    assert trace.dice[0] > 0.5
    reached = [i + 1 for i, d in enumerate(trace.dice) if d >= 0.85]
    noc = trace.figures(protocol)["noc@85"]
    assert noc == (reached[0] if reached else 3)
    assert result.summary["nodule"]["metrics"]["dice@1"]["mean"] == trace.dice[0]
