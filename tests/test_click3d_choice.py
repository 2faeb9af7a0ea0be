"""click3d's choice among a click's answers (``guidance.similarity_radii``): the model answers
once per radius of the clicked region whose intensities describe the tissue, and keeps the
answer it is surest of (:func:`medseg.models.click3d.choice.certainty`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from medseg.errors import InputError
from medseg.evaluation.interactive_run import check_pair
from medseg.models import load_model
from medseg.models.base import InferenceSettings
from medseg.models.click3d.choice import certainty
from medseg.models.click3d.config import CONFIG_NAME, read_config
from medseg.prompts.simulate import first_click
from medseg.prompts.types import Box, Point, Prompts

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "sample_data" / "models" / "click3d"
ABDOMEN = ROOT / "sample_data" / "Dataset002_AbdomenCT"


def test_certainty_is_the_soft_iou_of_the_map_with_its_own_mask():
    p = torch.tensor([0.9, 0.6, 0.3, 0.0])
    assert certainty(p) == pytest.approx((0.9 + 0.6) / (1 + 1 + 0.3 + 0.0))
    assert certainty(torch.tensor([1.0, 1.0, 0.0])) == 1.0
    assert certainty(torch.tensor([0.4, 0.1])) == 0.0  # no mask
    sharp, blurred = torch.tensor([0.95, 0.9, 0.05]), torch.tensor([0.7, 0.6, 0.4])
    assert certainty(sharp) > certainty(blurred)
    assert certainty(torch.tensor([0.7, 0.6, 0.4]), threshold=0.65) == pytest.approx(
        0.7 / (1 + 0.6 + 0.4))


@pytest.fixture(scope="module")
def case():
    """A Dataset002 training case (its kidneys were never a training target): the right
    kidney's deepest point lies in the renal sinus fat, a lesion sits in the liver."""
    image, label = check_pair(ABDOMEN / "imagesTr" / "abdomen_000_0000.nii.gz",
                              ABDOMEN / "labelsTr" / "abdomen_000.nii.gz")
    return image, label.data


def answer(model, image, prompts: Prompts):
    settings = InferenceSettings(prompts=prompts)
    prepared = model.prepare(image, settings)
    pred = model.restore(prepared, model.predict(prepared, settings), settings)
    return prepared, pred.channels != 0


def dice(a, b) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


def first(mask, image) -> Prompts:
    click = first_click(mask, image.spacing)
    return Prompts(points=(Point(tuple(map(float, click.position)), True),))


def test_the_surest_answer_is_kept_and_a_click_in_the_sinus_gets_the_kidney(case):
    image, label = case
    kidney = label == 3
    prompts = first(kidney, image)
    model = load_model(MODEL)
    radii = model.similarity_radii
    assert len(radii) > 1
    sure = {}
    for r in radii:
        model.similarity_radii = (r,)
        prepared, mask = answer(model, image, prompts)
        sure[r] = (certainty(prepared.probability if prepared.probability is not None
                             else model._object(prepared)), dice(mask, kidney))
    # the radius training used answers with the sinus fat only
    assert sure[radii[0]][1] < 0.3
    model.similarity_radii = radii
    prepared, mask = answer(model, image, prompts)
    best = max(radii, key=lambda r: sure[r][0])
    assert prepared.similarity_radius == best
    assert dice(mask, kidney) == pytest.approx(sure[best][1])
    assert dice(mask, kidney) >= 0.8


def test_a_lesion_clicked_inside_the_liver_stays_the_lesion(case):
    image, label = case
    lesion = label == 7
    _, mask = answer(load_model(MODEL), image, first(lesion, image))
    assert dice(mask, lesion) >= 0.8
    assert mask.sum() < 3 * lesion.sum()


def test_without_a_positive_click_the_model_answers_once(case):
    """A box (or negative clicks alone) gives the similarity no clicked region: one pass,
    the same as a model that lists one radius."""
    image, label = case
    idx = np.argwhere(label == 4)
    prompts = Prompts(boxes=(Box(tuple(map(float, idx.min(0))), tuple(map(float, idx.max(0)))),))
    model = load_model(MODEL)
    prepared, mask = answer(model, image, prompts)
    assert prepared.similarity_radius == model.similarity_radii[0]
    model.similarity_radii = model.similarity_radii[:1]
    _, alone = answer(model, image, prompts)
    assert np.array_equal(mask, alone)


@pytest.mark.parametrize("radii", [[], [0], [3, 17], [3.0], [True], 3, list(range(1, 10))])
def test_bad_radii_are_refused_naming_the_file(tmp_path, radii):
    folder = tmp_path / "bad"
    shutil.copytree(MODEL, folder)
    raw = json.loads((folder / CONFIG_NAME).read_text())
    raw["guidance"]["similarity_radii"] = radii
    (folder / CONFIG_NAME).write_text(json.dumps(raw))
    with pytest.raises(InputError, match=r"click3d\.json.*'guidance\.similarity_radii'"):
        read_config(folder)


def test_a_folder_without_radii_reads_the_training_radius(tmp_path):
    folder = tmp_path / "old"
    shutil.copytree(MODEL, folder)
    raw = json.loads((folder / CONFIG_NAME).read_text())
    del raw["guidance"]["similarity_radii"]
    (folder / CONFIG_NAME).write_text(json.dumps(raw))
    assert read_config(folder).similarity_radii == (3,)
