"""click3d: a class-agnostic promptable 3-D model (DeepGrow/DeepEdit style), trained here.

* :mod:`.config`: ``click3d.json`` validated, and writing a model folder atomically;
* :mod:`.network`: the small MONAI U-Net and its weights (``weights_only``);
* :mod:`.crop`: the cubic crop at an isotropic spacing, and separable resampling to and from
  the input grid;
* :mod:`.guidance`: the network input channels (image, clicks, prior mask, boxes);
* :mod:`.model`: :class:`~medseg.models.click3d.model.Click3dModel`, the folder as a
  promptable :class:`~medseg.models.base.SegmentationModel`, and the format's sniff,
  describe and load.

Registered through ``medseg_register_model_formats`` in ``plugins/model_formats.py``; imports
no other format.
"""
