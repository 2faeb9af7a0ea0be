"""MedSAM in the pull catalogue: listed with where its weights are published, not pullable
(a Google Drive folder), imported by hand from a ``.pth`` file with checksums recorded."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from medseg.errors import InputError, MedsegError
from medseg.hub import by_name
from medseg.hub.offers import offer
from medseg.models.loading import load_model

TINY = Path(__file__).resolve().parents[1] / "sample_data" / "sam" / "tiny_medsam" \
    / "tiny_medsam.pth"


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSEG_MODELS_DIR", str(tmp_path / "models"))
    return tmp_path / "models"


def test_medsam_is_listed_not_pullable_and_pull_says_where_it_is(models_dir):
    o = offer("sam:medsam_vit_b")
    assert o is not None and not o.pullable and o.state == "missing"
    assert o.licence == "Apache-2.0" and "drive.google.com" in o.note
    with pytest.raises(MedsegError, match=r"Google Drive.*drive\.google\.com"):
        by_name.pull("sam:medsam_vit_b")


def test_a_downloaded_checkpoint_is_imported_recorded_and_runs(models_dir, tmp_path):
    download = tmp_path / "medsam_vit_b.pth"
    shutil.copyfile(TINY, download)  # a real SAM state dict (small) in place of the 375 MB one
    folder = by_name.import_archive(download)
    assert folder == models_dir / "medsam_vit_b"
    assert {p.name for p in folder.iterdir()} >= {"sam.json", "medsam_vit_b.pth"}
    assert offer("sam:medsam_vit_b").state == "present"
    verdicts = by_name.verify(["sam:medsam_vit_b"])
    assert [(v.recorded, v.problems) for v in verdicts] == [(True, ())]
    model = load_model("medsam_vit_b")  # by name, from the models folder
    assert model.info.details["variant"] == "medsam_vit_b"
    with pytest.raises(InputError, match="already exists"):
        by_name.import_archive(download)


def test_a_broken_download_is_refused_and_nothing_is_installed(models_dir, tmp_path):
    bad = tmp_path / "medsam_vit_b.pth"
    bad.write_bytes(TINY.read_bytes()[:4096])
    with pytest.raises(InputError, match="not a readable PyTorch checkpoint") as err:
        by_name.import_archive(bad)
    assert str(err.value).startswith(str(bad))
    assert not (models_dir / "medsam_vit_b").exists()
