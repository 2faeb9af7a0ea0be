"""The example third-party plugin plugins/examples/medseg-deeplab installs into this
environment, shows up in ``medseg plugins`` (in a new interpreter, where the editable install
takes effect), trains via ``medseg train --arch deeplabv3plus`` and segments via
``medseg segment`` like the built-ins."""

import importlib
import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from medseg.cli import main
from medseg.io import read_image, read_label_map
from tests.brain_datasets import cropped_brains

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "plugins" / "examples" / "medseg-deeplab"
TINY = {"channels": [4, 8, 8, 16, 16], "aspp_channels": 8, "low_level_channels": 4,
        "decoder_channels": 8, "output_stride": 8, "atrous_rates": [1, 2, 3]}


def _installed(dist: str) -> bool:
    try:
        importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
                   check=True, capture_output=True, text=True)


def medseg(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "medseg.cli", *args], cwd=ROOT,
                          capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"medseg {' '.join(args)} exited {proc.returncode}:\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def deeplab_installed():
    """pip install -e the example (uninstalled afterwards unless it was installed before).

    The editable install's path hook only works in new interpreters, so this process also
    gets the source folder on ``sys.path`` while the test runs."""
    was_installed = _installed("medseg-deeplab")
    _pip("install", "--no-deps", "--no-build-isolation", "-e", str(EXAMPLE))
    sys.path.insert(0, str(EXAMPLE))
    importlib.invalidate_caches()
    yield
    sys.path.remove(str(EXAMPLE))
    if not was_installed:
        _pip("uninstall", "-y", "medseg-deeplab")


@pytest.fixture(scope="module")
def small_brains(tmp_path_factory):
    """Three sample brains cropped to 40^3 voxels around their centre (geometry kept)."""
    return cropped_brains(tmp_path_factory.mktemp("brains") / "Dataset013_SmallBrains", 3)


def test_example_stays_out_of_medseg_package():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = config["tool"]["setuptools"]["packages"]
    assert all(not p.startswith("medseg_plugins.") for p in packages), packages
    assert not (ROOT / "plugins" / "examples" / "__init__.py").exists()
    example = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())
    assert example["project"]["entry-points"]["medseg"] == {"deeplab": "medseg_deeplab.plugin"}


def test_deeplab_plugin_installs_trains_and_segments(deeplab_installed, small_brains,
                                                     tmp_path, capsys):
    rows = json.loads(medseg("plugins", "--json").stdout)
    found = {r["name"]: r for r in rows if r["kind"] == "architecture"}
    assert found["deeplabv3plus"]["plugin"] == "medseg-deeplab:deeplab"
    assert "Chen et al. 2018" in found["deeplabv3plus"]["description"]

    # the same commands in this process (the source folder is on sys.path, see the fixture)
    bundle = tmp_path / "deeplab_bundle"
    assert main(["train", str(small_brains), "-o", str(bundle), "--arch", "deeplabv3plus",
                 "--arch-params", json.dumps(TINY), "--patch-size", "32", "32", "32",
                 "--iterations", "3", "--val-every", "3", "--batch-size", "1",
                 "--samples-per-volume", "1", "--no-augment", "--quiet"]) == 0
    config = json.loads((bundle / "config.json").read_text())
    assert config["architecture"]["name"] == "deeplabv3plus"
    assert config["architecture"]["params"]["output_stride"] == 8
    assert config["training"]["iterations_done"] == 3

    case = small_brains / "imagesTr" / "b0_0000.nii.gz"
    assert main(["segment", str(case), "-o", str(tmp_path / "out"), "-m", str(bundle),
                 "--quiet"]) == 0
    assert "b0: ok" in capsys.readouterr().out
    image = read_image(case)
    mask = read_label_map(tmp_path / "out" / "b0.nii.gz")
    assert mask.same_grid(image)
    assert set(np.unique(mask.data)) <= {0, 1, 2, 3}
