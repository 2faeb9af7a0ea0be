"""medseg's own model format: a folder with ``config.json`` and ``weights.pt``.

* :mod:`.schema`: the config's JSON schema, checked before anything is built;
* :mod:`.bundle`: :class:`~medseg.models.medseg_bundle.bundle.Bundle`, reading (weights
  checksummed, ``torch.load(weights_only=True)``) and atomic writing;
* :mod:`.predict`: the network over a prepared image (sliding window, Gaussian blending);
* :mod:`.model`: :class:`~medseg.models.medseg_bundle.model.MedsegBundleModel`, the bundle
  as a :class:`~medseg.models.base.SegmentationModel`, and the format's sniff/describe/load.

Like the other formats it is registered through the ``medseg_register_model_formats`` hook
(``plugins/model_formats.py``) and imports no other format.
"""
