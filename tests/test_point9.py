"""Smaller rough edges of issue 25, point 9: a one-voxel class is not printed as 0.1 mL,
``medseg plugins`` has a metrics section, a single ``.dcm`` file is accepted by the uploader."""

from __future__ import annotations

from pathlib import Path

import pytest

from medseg.cli import main
from medseg.io.display import count_text, ml_text


def test_tiny_volumes_keep_two_significant_digits():
    assert ml_text(0.064) == "0.064" and ml_text(0.5) == "0.5"
    assert ml_text(0.0) == "0.0" and ml_text(1024.84) == "1024.8"


def test_counts_take_the_noun_that_fits():
    assert count_text(1, "class", "classes") == "1 class"
    assert count_text(0, "class", "classes") == "0 classes"
    assert count_text(117, "class", "classes") == "117 classes"


def test_plugins_lists_the_metrics(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    section = out.split("metrics:\n", 1)[1]
    names = [line.split()[0] for line in section.splitlines() if line.startswith("  ")]
    assert names[:3] == ["dice", "iou", "sensitivity"] and "nsd" in names and "miou" in names


def test_single_dicom_file_upload():
    pytest.importorskip("streamlit")
    from pydicom.data import get_testdata_file
    from streamlit.testing.v1 import AppTest

    app = Path(__file__).resolve().parents[1] / "app"
    at = AppTest.from_file(str(app / "Home.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/1_Segment.py").run()
    data = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    at.file_uploader(key="upload").set_value(("CT_small.dcm", data, "application/dicom"))
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("shape 128 × 128 × 1" in m.value for m in at.markdown), \
        [m.value for m in at.markdown]


def test_bundles_record_no_absolute_path_of_the_training_machine(monkeypatch, tmp_path):
    from medseg.commands.train import portable

    models = Path(__file__).resolve().parents[1] / "sample_data" / "models"
    for config in models.glob("*/config.json"):
        text = config.read_text()
        for root in ('"/work/', " /work/", " /tmp/", '"/tmp/', " /home/", " /root/"):
            assert root not in text, (config, root)
    monkeypatch.chdir(tmp_path)
    assert portable(str(tmp_path / "data" / "Dataset001")) == "data/Dataset001"
    assert portable("/srv/runs/stage4") == ".../runs/stage4"
    assert portable("--iterations") == "--iterations"


def test_instance_colours_never_match_a_class_colour():
    from medseg.io.colours import PALETTE, instance_colour

    colours = [instance_colour(i) for i in range(1, 500)]
    assert len(set(colours[:50])) == 50  # neighbouring ids differ
    for c in colours:
        nearest = min(sum((a - b) ** 2 for a, b in zip(c, p, strict=True)) for p in PALETTE)
        assert nearest > 40 ** 2, c  # far from every class colour
