"""Add a training record (for quality flags) to an already trained medseg bundle.

The record is computed from the labelled training cases of the dataset the bundle was trained
on (see ``medseg.qc.record``) and stored as ``training_record`` in the bundle's
``config.json``. Nothing else changes: the weights file and its SHA-256 in the config stay as
they are, so no retraining is needed. Bundles trained by ``medseg train`` record this
themselves.

    python sample_data/scripts/add_training_record.py sample_data/models/abdomen_ct \\
        sample_data/Dataset002_AbdomenCT

``--no-intensity`` keeps only classes, extent and case count (for models trained on images
synthesised with random contrasts, whose intensities mean nothing).
``--plausible NAME LOW HIGH`` (repeatable; NAME a class or ``all``) adds the volume range in mL
that the author declares plausible in a person (``plausible_ml``, checked without margin).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from medseg.io.atomic import write_text_atomic
from medseg.models.medseg_bundle.bundle import CONFIG_NAME, load_bundle
from medseg.training.record import dataset_training_record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path, help="bundle folder (config.json + weights.pt)")
    parser.add_argument("dataset", type=Path, help="the dataset folder it was trained on")
    parser.add_argument("--no-intensity", action="store_true",
                        help="record classes, extent and cases only")
    parser.add_argument("--plausible", nargs=3, action="append", default=[],
                        metavar=("NAME", "LOW", "HIGH"),
                        help="plausible volume range in mL of a class, or of 'all' classes")
    args = parser.parse_args(argv)
    bundle = load_bundle(args.bundle)
    record = dataset_training_record(args.dataset, intensity=not args.no_intensity)
    missing = set(bundle.labels) - {"background"} - set(record["classes"])
    if missing:
        raise SystemExit(f"{args.dataset}: dataset lacks the bundle's classes "
                         f"{', '.join(sorted(missing))}")
    for name, low, high in args.plausible:
        if name != "all" and name not in record["classes"]:
            raise SystemExit(f"--plausible {name}: not a class of {args.bundle}")
        record.setdefault("plausible_ml", {})[name] = sorted([float(low), float(high)])
    config = {k: v for k, v in bundle.config.items() if k != "weights"}
    config["training_record"] = record
    config["weights"] = bundle.config["weights"]  # unchanged: the weights are not touched
    write_text_atomic(bundle.path / CONFIG_NAME, json.dumps(config, indent=2) + "\n")
    load_bundle(bundle.path).load_weights()  # the checksum still matches
    print(f"{bundle.path / CONFIG_NAME}: training_record from {record['cases']} cases")


if __name__ == "__main__":
    main()
