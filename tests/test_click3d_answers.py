"""A promptable model's several answers to one prompt (``ModelInfo.answers``,
``Prompts.answer``): click3d answers once per radius of the clicked region whose intensities
describe the tissue (``guidance.similarity_radii``); the session answers the last prompt again
with another answer, the evaluation's ``pick_answer`` protocol lets the simulated user pick,
and bad answers are one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from medseg.engine.interactive import PromptSession
from medseg.engine.segmenter import Segmenter
from medseg.errors import InputError, MedsegError
from medseg.evaluation.interactive import ClickProtocol, click_object
from medseg.evaluation.interactive_run import check_pair
from medseg.models import load_model
from medseg.models.click3d.config import CONFIG_NAME, read_config
from medseg.prompts.simulate import first_click, next_click
from medseg.prompts.types import Box, Point, Prompts, PromptSpec

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "sample_data" / "models" / "click3d"
ABDOMEN = ROOT / "sample_data" / "Dataset002_AbdomenCT"


@pytest.fixture(scope="module")
def case():
    """A Dataset002 training case (its kidneys were never a training target): the right
    kidney's deepest point lies in the renal sinus fat; a lesion sits in the liver."""
    image, label = check_pair(ABDOMEN / "imagesTr" / "abdomen_000_0000.nii.gz",
                              ABDOMEN / "labelsTr" / "abdomen_000.nii.gz")
    return image, label.data


@pytest.fixture(scope="module")
def segmenter():
    return Segmenter(load_model(MODEL))


def dice(a, b) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


def test_the_shipped_model_offers_one_answer_per_radius(segmenter):
    config = read_config(MODEL)
    info = segmenter.models[0].info
    assert len(config.similarity_radii) > 1
    assert info.answers == len(config.similarity_radii)
    assert info.to_dict()["answers"] == info.answers
    assert config.similarity_radii[0] == 3  # the first answer: the radius training used


def test_a_click_in_the_sinus_answers_fat_first_and_the_kidney_as_another_answer(case,
                                                                             segmenter):
    image, label = case
    kidney = label == 3
    session = PromptSession(segmenter, image)
    click = first_click(kidney, image.spacing)
    first = session.add_point(click.position)
    assert dice(first, kidney) < 0.3  # the sinus fat the click landed in
    scores = [dice(first, kidney)]
    for answer in range(1, session.answers):
        scores.append(dice(session.choose(answer), kidney))
        assert session.answer == answer
    assert max(scores) >= 0.8
    # answering again with the first answer gives exactly the first mask
    np.testing.assert_array_equal(session.choose(0), first)
    best = int(np.argmax(scores))
    session.choose(best)
    # the next click is answered with the first answer, refining the kidney chosen
    step = next_click(session.mask, kidney, image.spacing)
    after = session.add_point(step.position, step.positive)
    assert session.answer == 0 and dice(after, kidney) >= 0.75
    # undo goes back through the answers: the chosen one, then the first one again
    assert dice(session.undo(), kidney) == pytest.approx(scores[best])
    assert session.answer == best
    np.testing.assert_array_equal(session.undo(), first)
    assert session.answer == 0 and len(session) == 1


def test_a_lesion_clicked_inside_the_liver_is_the_lesion_by_default(case, segmenter):
    image, label = case
    lesion = label == 7
    click = first_click(lesion, image.spacing)
    mask = PromptSession(segmenter, image).add_point(click.position)
    assert dice(mask, lesion) >= 0.8 and mask.sum() < 3 * lesion.sum()


def test_without_a_positive_click_every_answer_is_the_same(case, segmenter):
    """A box gives the similarity channel no clicked region: the radius changes nothing."""
    image, label = case
    idx = np.argwhere(label == 4)
    box = Box(tuple(map(float, idx.min(0))), tuple(map(float, idx.max(0))))
    first = segmenter(image, prompts=Prompts(boxes=(box,))).labels.data
    last = segmenter(image, prompts=Prompts(boxes=(box,), answer=2)).labels.data
    assert first.any()
    np.testing.assert_array_equal(first, last)


def test_an_answer_the_model_does_not_offer_is_one_line(case, segmenter):
    image, label = case
    point = Point(tuple(map(float, np.argwhere(label == 1)[0])))
    with pytest.raises(InputError, match=r"answer 4: model 'click3d' offers 3 answers"):
        segmenter(image, "ct.nii.gz", prompts=Prompts((point,), answer=3))
    with pytest.raises(InputError, match=r"ct\.nii\.gz.*answer 0: answers are whole numbers "
                                         r"counted from 1"):
        segmenter(image, "ct.nii.gz", prompts=PromptSpec((point,), voxel=True, answer=-1))
    session = PromptSession(segmenter, image)
    with pytest.raises(MedsegError, match="no prompt to answer yet"):
        session.choose(1)
    session.add_point(point.position)
    with pytest.raises(MedsegError, match="answer 5: model 'click3d' offers 3 answers"):
        session.choose(4)
    assert session.answer == 0 and len(session) == 1


def test_the_pick_protocol_lets_the_simulated_user_take_the_best_answer(case, segmenter):
    image, label = case
    kidney = label == 3
    plain = click_object(segmenter, image, kidney, ClickProtocol(clicks=2, dice_at=(1, 2)))
    picked = click_object(segmenter, image, kidney,
                          ClickProtocol(clicks=2, dice_at=(1, 2), pick_answer=True))
    assert plain.answer == 0 and plain.dice[0] < 0.3
    assert picked.answer > 0 and picked.dice[0] >= 0.8
    assert picked.clicks[0] == plain.clicks[0]  # the same first click


@pytest.mark.parametrize("radii", [[], [0], [3, 17], [3.0], [True], 3, list(range(1, 10))])
def test_bad_radii_are_refused_naming_the_file(tmp_path, radii):
    folder = tmp_path / "bad"
    shutil.copytree(MODEL, folder)
    raw = json.loads((folder / CONFIG_NAME).read_text())
    raw["guidance"]["similarity_radii"] = radii
    (folder / CONFIG_NAME).write_text(json.dumps(raw))
    with pytest.raises(InputError, match=r"click3d\.json.*'guidance\.similarity_radii'"):
        read_config(folder)


def test_a_folder_without_radii_offers_one_answer(tmp_path):
    folder = tmp_path / "old"
    shutil.copytree(MODEL, folder)
    raw = json.loads((folder / CONFIG_NAME).read_text())
    del raw["guidance"]["similarity_radii"]
    (folder / CONFIG_NAME).write_text(json.dumps(raw))
    assert read_config(folder).similarity_radii == (3,)
    assert load_model(folder).info.answers == 1
