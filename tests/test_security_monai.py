"""Issue 24, MONAI bundles: the second attack round's reproductions, as regression tests.

Each bypass carries a payload that creates a marker file; the test asserts the marker is never
written untrusted (and, where the payload is a config item, that trust is what lets it run),
while the same bundle without the payload still segments untrusted when it is code-free.
Bundles are copies of the committed fixture (tests/fixtures/monai_bundle, trained with plain
MONAI) reduced to the four parts medseg runs."""

from __future__ import annotations

import ast
import contextlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from medseg.cli import main as cli_main
from medseg.engine.segmenter import InferenceSettings, Segmenter
from medseg.errors import InputError, MedsegError
from medseg.io import read_image
from medseg.models import describe_model, load_model
from medseg.models.monai_bundle.allowlist import resolve
from medseg.models.monai_bundle.trust import TRUST_ENV, code_items
from medseg.registry import load_registry

FIXTURE = Path(__file__).parent / "fixtures" / "monai_bundle"
CASE = FIXTURE / "inputs" / "case_ras.nii.gz"
PACKAGE = Path(__file__).resolve().parents[1] / "medseg" / "models" / "monai_bundle"
#: modules MONAI probes with optional_import when first imported and while it builds a bundle
#: (not ``tqdm``: torch imports that at start-up, before any medseg code runs, so a Python
#: started inside a hostile folder picks it up whatever medseg does)
PROBED = ("itk", "nrrd", "cucim", "h5py", "cv2", "openslide", "tifffile")


@pytest.fixture(scope="module")
def registry():
    return load_registry(fresh=True)


@pytest.fixture(autouse=True)
def _no_trusted_folders(monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)


def _config(bundle: Path) -> dict:
    return json.loads((bundle / "configs" / "inference.json").read_text())


def _write_config(bundle: Path, config: dict) -> None:
    (bundle / "configs" / "inference.json").write_text(json.dumps(config, indent=1))


@pytest.fixture
def bundle(tmp_path) -> Path:
    """The fixture bundle reduced to what medseg runs, with no code: it runs untrusted."""
    dst = tmp_path / "bundle"
    shutil.copytree(FIXTURE / "bundle", dst)
    config = _config(dst)
    post = [t for t in config["postprocessing"]["transforms"] if t["_target_"] != "SaveImaged"]
    _write_config(dst, {"network_def": config["network_def"],
                        "preprocessing": config["preprocessing"], "inferer": config["inferer"],
                        "postprocessing": {"_target_": "Compose", "transforms": post}})
    return dst


def _payload(marker: Path) -> str:
    return f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n"


def _segments_untrusted(bundle: Path, registry) -> np.ndarray:
    model = load_model(bundle, registry, "cpu")
    assert model.info.details["trust"] == "no code (runs untrusted)"
    labels = Segmenter(model, InferenceSettings(device="cpu"), registry)(read_image(CASE))
    data = labels.labels.data
    assert len(np.unique(data)) >= 4  # a real segmentation of the phantom, not an empty map
    return data


# ---- 1: attribute walk -----------------------------------------------------------------------
def test_attribute_walk_target_runs_nothing_untrusted(bundle, registry, tmp_path, capsys):
    marker = tmp_path / "marker"
    config = _config(bundle)
    config["preprocessing"]["transforms"].insert(
        0, {"_target_": "monai.inferers.splitter.os.system", "command": f"touch {marker}"})
    _write_config(bundle, config)
    info = describe_model(bundle, registry)
    assert info.details["runs_code"] == "_target_: monai.inferers.splitter.os.system"
    with pytest.raises(InputError, match=r"untrusted bundle runs Python .*"
                                         r"monai\.inferers\.splitter\.os\.system"):
        load_model(bundle, registry, "cpu")
    code = cli_main(["segment", str(CASE), "-o", str(tmp_path / "out"), "-m", str(bundle),
                     "--device", "cpu", "--quiet"])
    assert code == 2 and not marker.exists()
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    # the payload is live: trusted, MONAI walks to os.system and runs it
    with pytest.warns(UserWarning, match="monai.inferers.splitter.os.system"), \
            contextlib.suppress(MedsegError):
        load_model(bundle, registry, "cpu", trust=True)
    assert marker.exists()


def test_payload_in_the_metadata_runs_nothing_untrusted(bundle, registry, tmp_path):
    """MONAI serves the metadata as ``@_meta_#...``: it is checked like the config."""
    marker = tmp_path / "marker"
    meta_path = bundle / "configs" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["x"] = {"_target_": "monai.inferers.splitter.os.system", "command": f"touch {marker}"}
    meta_path.write_text(json.dumps(meta))
    config = _config(bundle)
    config["preprocessing"]["transforms"].insert(0, "@_meta_#x")
    _write_config(bundle, config)
    with pytest.raises(InputError, match=r'"_target_: monai\.inferers\.splitter\.os\.system" '
                                         r"at _meta_#x#_target_") as err:
        load_model(bundle, registry, "cpu")
    assert str(err.value).startswith(f"{meta_path}: untrusted bundle runs Python")
    assert describe_model(bundle, registry).details["code"] == [
        "_meta_#x#_target_: _target_: monai.inferers.splitter.os.system"]
    assert not marker.exists()


@pytest.mark.parametrize("name", [
    "monai.inferers.splitter.os.system",   # a module's own import, walked through
    "monai.inferers.splitter.os",          # a module is not a component
    "monai.transforms.io.array.locate",    # pydoc.locate, imported by a transforms module
    "monai.utils.run_cmd", "run_cmd",      # under a formerly "safe" prefix / found by name
    "monai.transforms.Spacingd.__init__",  # attribute of a class
    "torch.load", "os.system", "builtins.eval", "SaveImaged",
])
def test_names_off_the_allow_list_do_not_resolve(name):
    assert resolve(name) is None
    config = {"inferer": {"_target_": name}}
    assert [c.text for c in code_items(config)] == [f"_target_: {name}"]


def test_listed_names_resolve_to_the_very_object():
    import monai.transforms
    import torch

    spacing = monai.transforms.Spacingd
    assert resolve("Spacingd") is spacing
    assert resolve("monai.transforms.Spacingd") is spacing
    assert resolve("monai.transforms.spatial.dictionary.Spacingd") is spacing
    assert resolve("torch.nn.Identity") is torch.nn.Identity
    assert resolve("scripts.rd.Reader", "reader") is None
    assert resolve("nibabelreader", "reader") is resolve("monai.data.NibabelReader", "reader")
    assert resolve("NumpyReader", "reader") is None  # its options can unpickle


def test_resolving_imports_nothing():
    assert "antigravity" not in sys.modules  # importing it would open a web browser
    before = set(sys.modules)
    assert resolve("antigravity.geohash") is None
    items = code_items({"t": {"_target_": "antigravity.geohash"},
                        "r": {"_target_": "LoadImaged", "keys": "image",
                              "reader": "antigravity.geohash"}})
    assert [c.where for c in items] == ["t#_target_", "r#reader"]
    assert set(sys.modules) == before


# ---- 2: a module beside the config -----------------------------------------------------------
def test_module_in_the_bundle_folder_is_never_imported_untrusted(bundle, registry, tmp_path,
                                                                 monkeypatch):
    marker = tmp_path / "marker"
    for name in PROBED:
        (bundle / f"{name}.py").write_text(_payload(marker))
    # even with the bundle folder on sys.path and as the working directory ("" entry)
    monkeypatch.chdir(bundle)
    monkeypatch.syspath_prepend(str(bundle))
    monkeypatch.setattr(sys, "path", ["", *sys.path])
    _segments_untrusted(bundle, registry)
    assert not marker.exists()
    info = describe_model(bundle, registry)
    assert info.details["runs_code"] is None
    assert info.details["modules"] == sorted(f"{n}.py" for n in PROBED)
    # the payload is live: an interpreter with the folder on its path runs it
    subprocess.run([sys.executable, "-c", "import nrrd"], cwd=bundle, check=True)
    assert marker.exists()


def test_module_in_the_bundle_folder_not_imported_when_run_from_it(bundle, tmp_path):
    """``python -m medseg.cli`` started inside the bundle folder (its ``""`` entry on
    ``sys.path`` is the folder) in a fresh interpreter, where MONAI is first imported, and so
    first probes its optional modules, while medseg checks the bundle."""
    marker = tmp_path / "marker"
    for name in PROBED:
        (bundle / f"{name}.py").write_text(_payload(marker))
    run = subprocess.run([sys.executable, "-m", "medseg.cli", "info", str(bundle)],
                         cwd=bundle, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert f"modules      {len(PROBED)} items" in run.stdout
    run = subprocess.run([sys.executable, "-m", "medseg.cli", "segment", str(CASE), "-o",
                          str(tmp_path / "out"), "-m", str(bundle), "--device", "cpu",
                          "--quiet"], cwd=bundle, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert list((tmp_path / "out").rglob("*.nii.gz"))
    assert not marker.exists()


# ---- 3: a module named as a plain string -----------------------------------------------------
def test_reader_named_as_a_string_runs_nothing_untrusted(bundle, registry, tmp_path):
    marker = tmp_path / "marker"
    (bundle / "scripts").mkdir()
    (bundle / "scripts" / "__init__.py").write_text("")
    (bundle / "scripts" / "rd.py").write_text(_payload(marker)
                                              + "from monai.data import NibabelReader as Reader\n")
    config = _config(bundle)
    config["preprocessing"]["transforms"][0]["reader"] = "scripts.rd.Reader"
    _write_config(bundle, config)
    with pytest.raises(InputError, match=r'"scripts\.rd\.Reader" at '
                                         r'preprocessing#transforms#0#reader'):
        load_model(bundle, registry, "cpu")
    assert describe_model(bundle, registry).details["runs_code"] == "scripts.rd.Reader"
    assert not marker.exists()
    # without the payload, a listed reader given by name runs untrusted
    config["preprocessing"]["transforms"][0]["reader"] = "NibabelReader"
    _write_config(bundle, config)
    _segments_untrusted(bundle, registry)
    assert not marker.exists()
    # the payload is live: trusted, MONAI imports the bundle's scripts/rd.py
    config["preprocessing"]["transforms"][0]["reader"] = "scripts.rd.Reader"
    _write_config(bundle, config)
    with pytest.warns(UserWarning, match=r"scripts\.rd\.Reader"):
        load_model(bundle, registry, "cpu", trust=True)
    for name in ("scripts.rd", "scripts"):  # imported from this test's folder
        sys.modules.pop(name, None)
    assert marker.exists()


@pytest.mark.parametrize(("item", "shown"), [
    ({"_target_": "UNet", "_debug_": True}, "_debug_: True (starts the debugger)"),
    ({"_target_": "SlidingWindowInferer", "roi_size": [8, 8, 8],
      "merger_cls": "AvgMerger"}, "AvgMerger"),
    ({"_target_": "LoadImaged", "keys": "image", "reader": ["NibabelReader", "scripts.x.R"]},
     "scripts.x.R"),
    ({"_target_": "LoadImaged", "keys": "image", "reader": "nibabelreader"}, None),
    ({"_target_": "ScaleIntensityRanged", "keys": "image", "a_min": -175, "a_max": 250,
      "b_min": 0.0, "b_max": 1.0}, None),
])
def test_names_in_other_keys(item, shown):
    items = code_items({"preprocessing": {"transforms": [item]}})
    assert [c.text for c in items] == ([shown] if shown else [])


# ---- 11: writers and file paths --------------------------------------------------------------
def test_save_image_in_preprocessing_is_dropped(bundle, registry, tmp_path):
    leak = tmp_path / "leak"
    config = _config(bundle)
    config["preprocessing"]["transforms"].insert(
        1, {"_target_": "SaveImaged", "keys": "image", "output_dir": str(leak),
            "output_postfix": "phi", "separate_folder": False})
    _write_config(bundle, config)
    assert describe_model(bundle, registry).details["code"] == []
    _segments_untrusted(bundle, registry)
    assert not leak.exists()
    # trusted bundles get their savers dropped as well: medseg writes its own outputs
    config["imports"] = ["$import os"]
    _write_config(bundle, config)
    with pytest.warns(UserWarning, match="import os"):
        model = load_model(bundle, registry, "cpu", trust=True)
    Segmenter(model, InferenceSettings(device="cpu"), registry)(read_image(CASE))
    assert not leak.exists()


@pytest.mark.parametrize(("extra", "shown"), [
    ({"saver": {"_target_": "SaveImaged", "keys": "image", "output_dir": "@output_dir"}},
     "_target_: SaveImaged"),  # a saver outside a transform list is not dropped: refused
    ({"where": "/tmp/medseg-leak"}, "file path: /tmp/medseg-leak"),
    ({"url": "https://example.org/w.pt"}, "file path: https://example.org/w.pt"),
    ({"home": "~/x"}, "file path: ~/x"),
])
def test_writers_and_file_paths_are_refused_untrusted(bundle, registry, extra, shown):
    _write_config(bundle, {**_config(bundle), **extra})
    with pytest.raises(InputError) as err:
        load_model(bundle, registry, "cpu")
    assert shown in str(err.value) and "\n" not in str(err.value)


# ---- 13: YAML alias bomb ---------------------------------------------------------------------
BOMB = "\n".join(["a: &a [x, x, x, x, x, x, x, x, x]"]
                 + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]"
                    for i in range(8)]
                 + ["preprocessing: *i", "network_def: {_target_: UNet}"]) + "\n"


def _yaml_bundle(bundle: Path, text: str) -> Path:
    (bundle / "configs" / "inference.json").unlink()
    (bundle / "configs" / "inference.yaml").write_text(text)
    return bundle / "configs" / "inference.yaml"


def test_yaml_alias_bomb_is_refused_within_two_seconds(bundle, registry, capsys):
    pytest.importorskip("yaml")
    assert len(BOMB.encode()) < 600  # the attack's size: a few hundred bytes, 9**9 nodes
    cli_main(["info", str(FIXTURE / "bundle")])  # warm: imports done, as in a normal run
    capsys.readouterr()
    path = _yaml_bundle(bundle, BOMB)
    start = time.perf_counter()
    code = cli_main(["info", str(bundle)])
    elapsed = time.perf_counter() - start
    err = capsys.readouterr().err.strip()
    assert elapsed < 2.0, elapsed
    assert code == 2 and len(err.splitlines()) == 1
    assert str(path) in err and "YAML aliases expand to more than" in err
    with pytest.raises(InputError, match="YAML aliases"):
        load_model(bundle, registry, "cpu")


def test_recursive_yaml_alias_is_one_line(bundle, capsys):
    pytest.importorskip("yaml")
    _yaml_bundle(bundle, "a: &a [*a]\nnetwork_def: {_target_: UNet}\n")
    assert cli_main(["info", str(bundle)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "refers to a node that contains it" in err


def test_yaml_with_a_few_aliases_still_runs_untrusted(bundle, registry):
    yaml = pytest.importorskip("yaml")
    config = _config(bundle)
    text = yaml.safe_dump(config).replace("keys: image", "keys: &key image", 1)
    text = text.replace("keys: image", "keys: *key")
    assert "*key" in text
    _yaml_bundle(bundle, text)
    assert describe_model(bundle, registry).details["code"] == []
    _segments_untrusted(bundle, registry)


def test_deeply_nested_config_is_one_line(bundle, registry):
    """Nesting that JSON still parses but a recursive walk would not survive: ``info`` lists it
    (the check is iterative), loading refuses it with one line instead of a traceback."""
    text = json.dumps(_config(bundle))
    (bundle / "configs" / "inference.json").write_text(
        text[:-1] + ', "x": ' + "[" * 900 + "]" * 900 + "}")
    assert describe_model(bundle, registry).details["code"] == []
    with pytest.raises(InputError, match=r"inference\.json: .*nested too deeply"):
        load_model(bundle, registry, "cpu")


# ---- 18: every code item shown ---------------------------------------------------------------
ITEMS = {
    "harmless": "$1 + 1",
    "net": {"_target_": "monai.utils.run_cmd", "cmd_list": ["true"]},
    "hidden": "$__import__('os').getpid()",
    "escape": "$'\x1b[2J' and None",
    "long": "$" + " + ".join(["1"] * 60) + " + __import__('os').getpid()",
}
SHOWN = ["harmless: $1 + 1", "net#_target_: _target_: monai.utils.run_cmd",
         "hidden: $__import__('os').getpid()", "escape: $'\\x1b[2J' and None",
         "long: " + ITEMS["long"]]


@pytest.fixture
def noisy_bundle(bundle) -> Path:
    _write_config(bundle, {**ITEMS, **_config(bundle)})
    return bundle


def test_info_lists_every_code_item(noisy_bundle, capsys):
    assert cli_main(["info", str(noisy_bundle)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out
    lines = [line.strip() for line in out.splitlines()]
    assert "code         5 items" in out
    for shown in SHOWN:
        assert shown in lines
    assert cli_main(["info", str(noisy_bundle), "--json"]) == 0
    details = json.loads(capsys.readouterr().out)["details"]
    assert details["code"] == SHOWN
    # an escape sequence as the first item is escaped in the one-item summary too
    _write_config(noisy_bundle, {"escape": ITEMS["escape"], **_config(noisy_bundle)})
    assert cli_main(["info", str(noisy_bundle)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "runs_code    $'\\x1b[2J' and None" in out


def test_refusal_names_every_code_item_on_one_line(noisy_bundle, tmp_path, capsys):
    code = cli_main(["segment", str(CASE), "-o", str(tmp_path / "out"), "-m",
                     str(noisy_bundle), "--device", "cpu", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "\x1b" not in err
    assert "(5 items: " in err
    for shown in SHOWN:
        where, _, text = shown.partition(": ")
        assert f'"{text}" at {where}' in err


def test_trusted_run_shows_every_code_item(noisy_bundle, tmp_path):
    """Through the real command line (pytest would capture the warning): stderr lists every
    item the trust lets run, one a line, before the case is segmented."""
    run = subprocess.run([sys.executable, "-m", "medseg.cli", "segment", str(CASE), "-o",
                          str(tmp_path / "out"), "-m", str(noisy_bundle), "--device", "cpu",
                          "--quiet", "--trust-bundle"], capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr
    assert f"medseg: warning: MONAI bundle {noisy_bundle} is trusted and runs 5 code items:" \
        in run.stderr
    assert "\x1b" not in run.stderr
    for shown in SHOWN:
        assert f"\n  {shown}\n" in run.stderr
    assert list((tmp_path / "out").rglob("*.nii.gz"))


def test_ui_trust_checkbox_lists_every_code_item(noisy_bundle, monkeypatch):
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    models = noisy_bundle.parent / "models"
    models.mkdir()
    shutil.copytree(noisy_bundle, models / "noisy")
    monkeypatch.setenv("MEDSEG_MODELS_DIR", str(models))
    app = Path(__file__).resolve().parents[1] / "app"
    at = AppTest.from_file(str(app / "Home.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/1_Segment.py").run()
    at.selectbox(key="model").set_value("noisy").run()
    assert not at.exception
    blocks = [c.value for c in at.code]
    assert "\n".join(SHOWN) in blocks
    assert at.checkbox(key="trust").label == "Trust this bundle's code (5 items)"


# ---- structure -------------------------------------------------------------------------------
def test_monai_bundle_package_has_no_import_cycle():
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.ImportFrom) and node.module
                    and node.module.startswith("medseg.models.monai_bundle.")):
                deps.add(node.module.rsplit(".", 1)[1])
        graph[path.stem] = deps

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for dep in graph.get(start, ()):
            if dep == goal or (dep not in seen and reaches(dep, goal, seen | {dep})):
                return True
        return False

    assert graph["layout"] and "trust" not in graph["layout"]
    assert [m for m in graph if reaches(m, m, {m})] == []
