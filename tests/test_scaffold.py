"""``medseg plugins new``: the skeleton installs (pip install -e), passes its own tests
unmodified, and its components show up in ``medseg plugins --json``."""

import json
import subprocess
import sys

import pytest

from medseg.cli import main
from medseg.devtools.scaffold import create_plugin, plugin_files
from medseg.errors import MedsegError

NAME = "medseg-scaffoldtest"


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
                   check=True, capture_output=True, text=True)


@pytest.fixture
def installed_skeleton(tmp_path):
    """Scaffold via the CLI into tmp_path and pip install -e it; uninstalled afterwards."""
    assert main(["plugins", "new", NAME, "--output", str(tmp_path)]) == 0
    target = tmp_path / NAME
    _pip("install", "--no-deps", "--no-build-isolation", "-e", str(target))
    yield target
    _pip("uninstall", "-y", NAME)


def test_plugins_new_installs_and_passes_its_own_tests(installed_skeleton):
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                          cwd=installed_skeleton, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "6 passed" in proc.stdout
    listing = subprocess.run([sys.executable, "-m", "medseg.cli", "plugins", "--json"],
                             capture_output=True, text=True, check=True)
    rows = {(r["kind"], r["name"]): r["plugin"] for r in json.loads(listing.stdout)}
    plugin = f"{NAME}:scaffoldtest"
    assert rows[("architecture", "scaffoldtest_unet")] == plugin
    assert rows[("loss", "scaffoldtest_dice_ce")] == plugin
    assert rows[("postprocessor", "scaffoldtest_min_volume")] == plugin


def test_skeleton_files_and_entry_point():
    files = plugin_files("medseg-acme")
    assert set(files) == {"pyproject.toml", "README.md", ".gitignore",
                          "medseg_acme/__init__.py", "medseg_acme/plugin.py",
                          "tests/test_plugin.py"}
    assert '[project.entry-points.medseg]\nacme = "medseg_acme.plugin"' in files["pyproject.toml"]
    for rel, text in files.items():
        assert "$" not in text.replace("\\$", ""), rel  # every template field filled
        if rel.endswith(".py"):
            compile(text, rel, "exec")
    other = plugin_files("acme")
    assert 'acme = "acme.plugin"' in other["pyproject.toml"]
    assert 'name="acme_unet"' in other["acme/plugin.py"]


@pytest.mark.parametrize("bad", ["Acme", "1acme", "acme_seg", "acme--seg", "acme-", ""])
def test_bad_names_are_refused(bad, tmp_path):
    with pytest.raises(MedsegError, match="plugin name"):
        create_plugin(bad, tmp_path)


def test_existing_folder_is_not_overwritten(tmp_path, capsys):
    (tmp_path / "medseg-acme").mkdir()
    (tmp_path / "medseg-acme" / "keep.txt").write_text("mine")
    assert main(["plugins", "new", "medseg-acme", "-o", str(tmp_path)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["plugins", "new", "medseg-acme", "-o", str(tmp_path), "--force"]) == 0
    assert (tmp_path / "medseg-acme" / "keep.txt").read_text() == "mine"
    assert (tmp_path / "medseg-acme" / "medseg_acme" / "plugin.py").is_file()
