"""Every hook a medseg plugin can implement.

A plugin is any module or object with functions decorated by :data:`hookimpl`; it is found
through the ``medseg`` entry-point group, a plugins folder (``--plugins-dir`` or
``MEDSEG_PLUGINS_DIR``) or registered directly on a manager from
:func:`medseg.plugins.get_plugin_manager`.
Hooks only ever gain arguments; pluggy lets an implementation accept a subset of them.
"""

from __future__ import annotations

import pluggy

from medseg.specs import (
    ArchitectureSpec,
    LossSpec,
    MetricSpec,
    ModelFormatSpec,
    PostprocessorSpec,
    ReaderSpec,
)

PROJECT = "medseg"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def medseg_register_architectures() -> list[ArchitectureSpec]:  # type: ignore[empty-body]
    """Return network architectures as :class:`~medseg.specs.ArchitectureSpec` objects.

    Each ``factory(spatial_dims=, in_channels=, out_channels=, **params)`` builds a fresh
    ``torch.nn.Module`` producing logits of layout ``B, C_out, X, Y[, Z]``.
    """


@hookspec
def medseg_register_losses() -> list[LossSpec]:  # type: ignore[empty-body]
    """Return training losses as :class:`~medseg.specs.LossSpec` objects.

    Each ``factory(num_classes=, **params)`` builds a callable taking logits ``B, C, *spatial``
    and an integer target ``B, 1, *spatial`` and returning a scalar tensor.
    """


@hookspec
def medseg_register_postprocessors() -> list[PostprocessorSpec]:  # type: ignore[empty-body]
    """Return label-map postprocessors as :class:`~medseg.specs.PostprocessorSpec` objects.

    Each ``fn(labels, *, spacing, classes, **params)`` is pure: it takes an integer array
    ``X, Y[, Z]`` and returns a new one of the same shape and dtype.
    """


@hookspec
def medseg_register_readers() -> list[ReaderSpec]:  # type: ignore[empty-body]
    """Return image readers as :class:`~medseg.specs.ReaderSpec` objects.

    ``sniff(path)`` says whether the reader recognises the file or folder by content;
    ``read(path, **options)`` returns a :class:`medseg.volume.Volume` or raises
    :class:`medseg.errors.InputError` naming the path.
    """


@hookspec
def medseg_register_metrics() -> list[MetricSpec]:  # type: ignore[empty-body]
    """Return extra per-class evaluation metrics as :class:`~medseg.specs.MetricSpec` objects.

    ``fn(pred, ref, spacing)`` receives two boolean arrays of one class and the voxel spacing
    in mm and returns a float (NaN when undefined).
    """


@hookspec
def medseg_register_model_formats() -> list[ModelFormatSpec]:  # type: ignore[empty-body]
    """Return model formats as :class:`~medseg.specs.ModelFormatSpec` objects.

    ``sniff(path)`` says whether a folder is a model of this format; ``describe(path)`` returns
    a :class:`medseg.models.base.ModelInfo` from metadata only; ``load(path, *, registry,
    device, **options)`` returns a :class:`medseg.models.base.SegmentationModel`. Errors caused
    by the folder are :class:`medseg.errors.InputError` naming the file.
    """
