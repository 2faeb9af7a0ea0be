"""The field's default recipe on the brain data, as a baseline for ``brain_tissue``: nnU-Net v2
with its stock preprocessing and augmentation, a narrower network (features 16-128) and 250
iterations (one epoch), trained on ``Dataset001_BrainTissue`` as it is.

Run in a throwaway nnunetv2 environment (install recipe in ``tests/fixtures/nnunet/README.md``),
then score the result with medseg's own nnU-Net runtime::

    /work/venv-nnunet/bin/python sample_data/scripts/nnunet_brain_baseline.py WORK data plan train
    python sample_data/scripts/nnunet_brain_baseline.py WORK score

Measured on this 2-core CPU (21 min of training): see README's model section.
"""

import json
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "fixtures" / "nnunet"))
sys.path.insert(0, str(REPO / "sample_data" / "scripts"))
import make_fixtures as mf  # noqa: E402

WORK = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("nnunet-work")
SPEC = mf.ModelSpec("C", 503, "Dataset503_BrainTissue", "nnUNetTrainer", "nnUNetPlansNarrow",
                    base_features=16, max_features=128, gpu_memory_gb=1.0)


def data():
    ds = WORK / "nnUNet_raw" / SPEC.dataset_name
    for sub in ("imagesTr", "labelsTr"):
        shutil.copytree(mf.BRAIN / sub, ds / sub, dirs_exist_ok=True)
    n = len(list((ds / "labelsTr").glob("*.nii.gz")))
    mf._write_dataset_json(ds, "BrainTissue", "Dataset001 as is", "MNI", "T1", mf.BRAIN_LABELS, n)


def train():
    import torch
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    os.environ["nnUNet_n_proc_DA"] = "0"  # noqa: SIM112 - nnU-Net's own name
    torch.set_num_threads(2)

    class Short(nnUNetTrainer):
        def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                     device=None):
            super().__init__(plans, configuration, fold, dataset_json, torch.device("cpu"))
            self.num_epochs = 1
            self.num_iterations_per_epoch = 250
            self.num_val_iterations_per_epoch = 5

    Short.__name__ = Short.__qualname__ = "nnUNetTrainer"
    Short.__module__ = nnUNetTrainer.__module__
    pre = Path(nnUNet_preprocessed) / SPEC.dataset_name
    plans = json.loads((pre / f"{SPEC.plans_name}.json").read_text())
    dj = json.loads((pre / "dataset.json").read_text())
    t = Short(plans=dict(plans, continue_training=False), configuration="3d_fullres", fold=0,
              dataset_json=dj)
    t0 = time.time()
    t.run_training()
    print("trained in", round(time.time() - t0), "s", flush=True)


def score():
    import torch
    import validate_brain as vb

    from medseg.engine.segmenter import InferenceSettings, Segmenter
    from medseg.models import load_model
    from medseg.plugins import get_plugin_manager
    from medseg.registry import build_registry

    torch.set_num_threads(2)
    reg = build_registry(get_plugin_manager())
    folder = WORK / "nnUNet_results" / SPEC.dataset_name / SPEC.result_dirname
    seg = Segmenter(load_model(folder, reg, "cpu"), InferenceSettings(device="cpu"), registry=reg)
    vb.validate_mni(seg, ("as_is", "stripped", "thick_1x1x5"))
    vb.validate_real_head(seg, [])


if __name__ == "__main__":
    mf.set_environment(WORK.resolve())
    os.environ["OMP_NUM_THREADS"] = "2"
    if "data" in sys.argv:
        data()
    if "plan" in sys.argv:
        mf.plan(SPEC)
    if "train" in sys.argv:
        train()
    if "score" in sys.argv:
        score()
