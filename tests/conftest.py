"""Shared fixtures: a fresh plugin manager/registry per test and volumes with known geometry."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from medseg.plugins import get_plugin_manager
from medseg.registry import build_registry
from medseg.volume import Volume, affine_from_geometry

#: the web app's folder, on sys.path as ``streamlit run`` puts the main script's folder, so the
#: app tests import ``medseg_ui`` as the app itself does
APP = Path(__file__).resolve().parents[1] / "app"
if str(APP) not in sys.path:
    sys.path.insert(0, str(APP))


@pytest.fixture
def plugin_manager():
    return get_plugin_manager()


@pytest.fixture
def registry(plugin_manager):
    return build_registry(plugin_manager)


def oblique_affine(spacing=(0.7, 0.9, 2.5), origin=(12.5, -30.25, 41.0),
                   angles=(12.0, -20.0, 7.0)) -> np.ndarray:
    direction = Rotation.from_euler("xyz", angles, degrees=True).as_matrix()
    return affine_from_geometry(spacing, origin, direction)


def random_volume(shape=(9, 8, 7), affine=None, dtype=np.float32, seed=0) -> Volume:
    rng = np.random.default_rng(seed)
    arr = (rng.normal(size=shape) * 100).astype(dtype)
    return Volume.from_spatial(arr, oblique_affine() if affine is None else affine)


def assert_same_world(a: Volume, b: Volume, atol: float = 1e-4) -> None:
    """Voxel corners map to the same world coordinates (mm) in both volumes."""
    assert a.spatial_shape == b.spatial_shape
    np.testing.assert_allclose(a.corner_coordinates(), b.corner_coordinates(), atol=atol)
