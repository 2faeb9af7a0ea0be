"""Bundle configs are validated against a schema before anything is built: every violation is
one line naming the key (issue: negative patch sizes were accepted and changed the result, NaN
spacing was a raw ValueError, 2048 channels allocated 1.5 GB before the bundle was rejected)."""

import json
import shutil
import time
import tracemalloc
from pathlib import Path

import pytest

from medseg.cli import main
from medseg.errors import InputError
from medseg.models.medseg_bundle.bundle import load_bundle

ROOT = Path(__file__).resolve().parent.parent
BUNDLE = ROOT / "sample_data" / "models" / "abdomen_ct"


def _copy(tmp_path: Path, edit) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(BUNDLE, target)
    config = json.loads((target / "config.json").read_text())
    edit(config)
    # NaN is not JSON, but Python's json module writes and reads it: a config can hold it
    (target / "config.json").write_text(json.dumps(config))
    return target


@pytest.mark.parametrize(("edit", "message"), [
    (lambda c: c.update(patch_size=[-64, 64, 64]), "patch_size[0]: -64 is less than the minimum"),
    (lambda c: c.update(patch_size=[0, 64, 64]), "patch_size[0]: 0 is less than the minimum"),
    (lambda c: c.update(patch_size=[64, 64]), "patch_size: 2 values for spatial_dims 3"),
    (lambda c: c["preprocessing"].update(target_spacing=[float("nan"), 4.0, 5.0]),
     "preprocessing.target_spacing[0]: nan is not a finite number"),
    (lambda c: c["preprocessing"].update(target_spacing=[-4.0, 4.0, 5.0]),
     "preprocessing.target_spacing[0]: -4.0 is less than or equal to the minimum"),
    (lambda c: c["architecture"]["params"].update(channels=[2048, 2048, 2048, 2048]),
     "architecture.params: channel counts ask for about"),
    (lambda c: c.update(in_channels=5000), "in_channels: 5000 is greater than the maximum"),
    (lambda c: c.update(spatial_dims=4), "spatial_dims: 4 is not one of"),
    (lambda c: c.update(surprise=1), "Additional properties are not allowed ('surprise'"),
    (lambda c: c["labels"].update(liver=-1), "labels.liver: -1 is less than the minimum"),
    (lambda c: c["inference"].update(overlap=1.5), "inference.overlap: 1.5 is greater than"),
])
def test_invalid_config_is_one_line_naming_the_key(tmp_path, edit, message):
    path = _copy(tmp_path, edit)
    with pytest.raises(InputError) as info:
        load_bundle(path)
    text = str(info.value)
    assert message in text, text
    assert str(path / "config.json") in text and "\n" not in text


def test_huge_channels_are_refused_before_allocating(tmp_path):
    path = _copy(tmp_path, lambda c: c["architecture"]["params"].update(
        channels=[2048, 2048, 2048, 2048]))
    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(InputError):
        load_bundle(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 50 * 1024**2 and time.perf_counter() - start < 5


def test_cli_exit_2_and_no_output_for_a_bad_config(tmp_path, capsys):
    path = _copy(tmp_path, lambda c: c.update(patch_size=[-64, 64, 64]))
    out = tmp_path / "out"
    code = main(["segment", str(ROOT / "sample_data" / "dicom" / "ct_phantom_001"), "-m",
                 str(path), "-o", str(out), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "patch_size[0]" in err
    assert not out.exists()


def test_shipped_bundles_meet_the_schema():
    for bundle in (ROOT / "sample_data" / "models").iterdir():
        if (bundle / "config.json").is_file():
            assert load_bundle(bundle).name
