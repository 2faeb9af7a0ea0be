"""Validation of a click3d model on data that is no test split: the set every click3d change
was chosen on (recorded in click3d.json ``training.validation_not_test``).

* ``kidney``: the kidneys (labels 3, 4) of four Dataset002 *training* cases (abdomen_000, 003,
  006, 009). The kidneys are never a click3d training target, so this class is unseen;
* ``liver(tr)``, ``spleen(tr)``, ``aorta(tr)``, ``lesion(tr)``: the trained organs of those
  cases (liver with its lesion, spleen, aorta, liver lesion). They are training targets, so
  the figures are optimistic for every model alike;
* ``head``: six synthetic heads with skull, scalp and face around Dataset001's training label
  maps (:mod:`medseg.training.click3d.heads`), drawn with a seed training never used
  (987654); the whole brain is the target.

Each object is clicked ``--clicks`` times with the protocol of
:mod:`medseg.evaluation.interactive`; the script prints the mean Dice after each click per
group and ``ALL groups``, the mean of the group means. The held-out bench
(``bench_interactive.py``) is run only after a change is chosen here.

    python bench/validate_click3d.py [-m sample_data/models/click3d] [--clicks 5]
        [--cache DIR] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from bench_interactive import shown  # (bench/ is on the path of a script run from it)

from medseg.engine.segmenter import InferenceSettings, Segmenter
from medseg.evaluation.classes import ClassGroups
from medseg.evaluation.interactive import ClickProtocol, click_case
from medseg.io import read_image, read_label_map
from medseg.models import load_model
from medseg.registry import load_registry
from medseg.training.click3d.heads import HeadPool, head_sources

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
CASES = ("abdomen_000", "abdomen_003", "abdomen_006", "abdomen_009")
HEAD_SEED, N_HEADS = 987654, 6
#: group -> classes of the Dataset002 label map (a union where several labels are listed)
ABDOMEN: dict[str, dict[int, str] | ClassGroups] = {
    "kidney": {3: "kidney_right", 4: "kidney_left"},
    "liver(tr)": ClassGroups({1: "liver"}, {1: (1, 7)}),
    "spleen(tr)": {2: "spleen"},
    "aorta(tr)": {5: "aorta"},
    "lesion(tr)": {7: "liver_lesion"}}


def write_heads(folder: Path) -> list[tuple[Path, Path]]:
    """The synthetic heads as NIfTI pairs (drawn once per folder; the draw is seeded)."""
    folder.mkdir(parents=True, exist_ok=True)
    pairs = [(folder / f"head_{k}_0000.nii.gz", folder / f"head_{k}.nii.gz")
             for k in range(N_HEADS)]
    if all(i.is_file() and r.is_file() for i, r in pairs):
        return pairs
    pool = HeadPool(head_sources(SAMPLE / "Dataset001_BrainTissue"), N_HEADS, HEAD_SEED)
    for case, (image_path, ref_path) in zip(pool.cases, pairs, strict=True):
        affine = np.diag([*case.spacing, 1.0])
        nib.save(nib.Nifti1Image(case.image.numpy().astype(np.float32), affine),
                 str(image_path))
        nib.save(nib.Nifti1Image(case.labels.numpy().astype(np.uint8), affine), str(ref_path))
    return pairs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-m", "--model", default=str(SAMPLE / "models" / "click3d"))
    parser.add_argument("--clicks", type=int, default=5)
    parser.add_argument("--cache", type=Path,
                        default=Path(tempfile.gettempdir()) / "medseg_click3d_val_heads")
    parser.add_argument("--out", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    registry = load_registry(None, fresh=True)
    segmenter = Segmenter(load_model(args.model, registry, "cpu"),
                          InferenceSettings(device="cpu"), registry)
    protocol = ClickProtocol(clicks=args.clicks, dice_at=(1,))
    started = time.time()
    per_group: dict[str, list[list[float]]] = {g: [] for g in (*ABDOMEN, "head")}
    ds2 = SAMPLE / "Dataset002_AbdomenCT"
    for case in CASES:
        image = read_image(ds2 / "imagesTr" / f"{case}_0000.nii.gz")
        ref = read_label_map(ds2 / "labelsTr" / f"{case}.nii.gz")
        for group, classes in ABDOMEN.items():
            per_group[group] += [t.dice for t in click_case(segmenter, image, ref, protocol,
                                                             classes, case=case)]
    for image_path, ref_path in write_heads(args.cache):
        traces = click_case(segmenter, read_image(image_path), read_label_map(ref_path),
                            protocol, {1: "brain"}, case=image_path.name)
        per_group["head"] += [t.dice for t in traces]
    means = {g: np.mean(np.array(v), axis=0).round(3).tolist() for g, v in per_group.items()}
    means["ALL groups"] = np.mean([means[g] for g in per_group], axis=0).round(3).tolist()
    for group, values in means.items():
        print(f"{group:12s} " + " ".join(f"{v:.3f}" for v in values))
    print(f"{time.time() - started:.0f} s", file=sys.stderr)
    if args.out:
        args.out.write_text(json.dumps({"model": shown(args.model), "clicks": args.clicks,
                                        "groups": means,
                                        "objects": {g: v for g, v in per_group.items()}},
                                       indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
