"""Plugin loading: built-ins via entry points, third-party plugins, broken plugins, clashes."""

import json
import textwrap
import warnings

import pytest

from medseg.cli import main
from medseg.errors import PluginError
from medseg.hookspecs import hookimpl
from medseg.plugins import PluginWarning, get_plugin_manager
from medseg.registry import build_registry
from medseg.specs import ArchitectureSpec

PLUGIN_SOURCE = textwrap.dedent(
    """
    import torch
    from medseg.hookspecs import hookimpl
    from medseg.specs import ArchitectureSpec

    class TinyNet(torch.nn.Module):
        def __init__(self, spatial_dims, in_channels, out_channels):
            super().__init__()
            conv = torch.nn.Conv3d if spatial_dims == 3 else torch.nn.Conv2d
            self.conv = conv(in_channels, out_channels, 3, padding=1)

        def forward(self, x):
            return self.conv(x)

    @hookimpl
    def medseg_register_architectures():
        return [ArchitectureSpec(name="{name}", factory=TinyNet, description="tiny test net",
                                 size_divisor=1)]
    """
)


def _install_fake_distribution(site, dist, module, source, monkeypatch):
    """A real installed distribution as importlib.metadata sees it: a module + dist-info."""
    (site / f"{module}.py").write_text(source)
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[medseg]\n{module} = {module}\n")
    monkeypatch.syspath_prepend(str(site))


def test_builtins_are_loaded_through_entry_points(registry):
    assert {"unet", "dynunet", "segresnet"} <= set(registry.architectures)
    assert {"ce", "dice", "iou", "focal", "dice_ce", "dice_focal"} <= set(registry.losses)
    assert {"keep_largest", "keep_largest_foreground", "fill_holes", "remove_small"} <= set(
        registry.postprocessors)
    assert {"nifti", "dicom", "itk", "image2d"} <= set(registry.readers)
    assert registry.architectures.providers["unet"] == "medseg:architectures"
    assert registry.readers.providers["dicom"] == "medseg:readers"


def test_builtin_package_is_medseg_plugins_not_plugins():
    import medseg_plugins.architectures as mod

    assert mod.__name__ == "medseg_plugins.architectures"
    assert mod.__file__.replace("\\", "/").endswith("plugins/architectures.py")


def test_cli_lists_builtins_as_json(capsys):
    assert main(["plugins", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = {(r["kind"], r["name"]): r["plugin"] for r in rows}
    assert names[("architecture", "dynunet")] == "medseg:architectures"
    assert names[("loss", "dice_focal")] == "medseg:losses"


def test_third_party_distribution_plugin_appears(tmp_path, monkeypatch, capsys):
    _install_fake_distribution(tmp_path, "acme-seg", "acme_seg",
                               PLUGIN_SOURCE.format(name="acme_net"), monkeypatch)
    reg = build_registry(get_plugin_manager())
    assert "acme_net" in reg.architectures
    assert reg.architectures.providers["acme_net"] == "acme-seg:acme_seg"
    net = reg.architectures.get("acme_net").factory(spatial_dims=3, in_channels=1, out_channels=2)
    import torch

    assert net(torch.zeros(1, 1, 4, 4, 4)).shape == (1, 2, 4, 4, 4)
    assert main(["plugins"]) == 0
    assert "acme_net" in capsys.readouterr().out


def test_plugin_raising_on_import_is_skipped_with_warning(tmp_path, monkeypatch):
    _install_fake_distribution(tmp_path, "broken-seg", "broken_seg",
                               "raise RuntimeError('boom at import')\n", monkeypatch)
    with pytest.warns(PluginWarning, match=r"broken-seg:broken_seg.*failed to import.*boom"):
        reg = build_registry(get_plugin_manager())
    assert "unet" in reg.architectures  # the rest keep working
    monkeypatch.setenv("MEDSEG_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="broken-seg:broken_seg"):
        get_plugin_manager()


def test_single_file_plugins_folder(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "my_plugins"
    folder.mkdir()
    (folder / "dropin.py").write_text(PLUGIN_SOURCE.format(name="dropin_net"))
    (folder / "broken.py").write_text("import does_not_exist_anywhere\n")
    with pytest.warns(PluginWarning, match=r"file:broken.*ModuleNotFoundError"):
        reg = build_registry(get_plugin_manager(plugins_dir=folder))
    assert reg.architectures.providers["dropin_net"] == "file:dropin"
    with pytest.warns(PluginWarning):
        assert main(["--plugins-dir", str(folder), "plugins"]) == 0
    assert "dropin_net" in capsys.readouterr().out
    monkeypatch.setenv("MEDSEG_PLUGINS_DIR", str(folder))
    with pytest.warns(PluginWarning):
        reg2 = build_registry(get_plugin_manager())
    assert "dropin_net" in reg2.architectures


def test_duplicate_names_error_names_both_plugins(tmp_path):
    folder = tmp_path / "dups"
    folder.mkdir()
    (folder / "first.py").write_text(PLUGIN_SOURCE.format(name="same_net"))
    (folder / "second.py").write_text(PLUGIN_SOURCE.format(name="same_net"))
    with pytest.raises(PluginError, match=r"'same_net'.*'file:first'.*'file:second'"):
        build_registry(get_plugin_manager(plugins_dir=folder))


def test_clash_with_builtin_name(tmp_path):
    folder = tmp_path / "clash"
    folder.mkdir()
    (folder / "myunet.py").write_text(PLUGIN_SOURCE.format(name="unet"))
    with pytest.raises(PluginError, match=r"medseg:architectures.*file:myunet"):
        build_registry(get_plugin_manager(plugins_dir=folder))


class _RaisingPlugin:
    @hookimpl
    def medseg_register_architectures(self):
        raise ValueError("cannot build")


class _WrongTypePlugin:
    @hookimpl
    def medseg_register_losses(self):
        return ["not a spec"]


def test_plugin_failing_at_call_is_reported_and_skipped():
    pm = get_plugin_manager(plugins=[_RaisingPlugin(), _WrongTypePlugin()])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reg = build_registry(pm)
    messages = [str(w.message) for w in caught if issubclass(w.category, PluginWarning)]
    assert any("_RaisingPlugin" in m and "cannot build" in m for m in messages)
    assert any("_WrongTypePlugin" in m and "expected LossSpec" in m for m in messages)
    assert "unet" in reg.architectures and "dice" in reg.losses


def test_unknown_hook_name_is_reported():
    class Typo:
        @hookimpl
        def medseg_register_architecture(self):  # missing "s"
            return []

    with pytest.warns(PluginWarning, match="unknown hook"):
        get_plugin_manager(plugins=[Typo()])


def test_unknown_component_lists_available(registry):
    with pytest.raises(PluginError, match=r"unknown architecture 'nope'; available: .*unet"):
        registry.architectures.get("nope")


def test_each_manager_is_fresh():
    class Extra:
        @hookimpl
        def medseg_register_architectures(self):
            return [ArchitectureSpec("extra_net", factory=lambda **kw: None)]

    with_extra = build_registry(get_plugin_manager(plugins=[Extra()]))
    without = build_registry(get_plugin_manager())
    assert "extra_net" in with_extra.architectures
    assert "extra_net" not in without.architectures
