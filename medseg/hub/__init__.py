"""Fetching model weights: ``medseg models pull``, ``verify`` and ``import``.

One concept per module:

* :mod:`medseg.hub.download`: one HTTP(S) file, resumed after a dropped connection (Range);
* :mod:`medseg.hub.filelock`: one pull of a model at a time (``fcntl`` lock beside it);
* :mod:`medseg.io.checksum_record`: the checksum record (``.medseg-lock.json``) written into
  a pulled folder, the fast load-time check
  :func:`~medseg.io.checksum_record.check_installed` and the full
  :func:`~medseg.io.checksum_record.verify`;
* :mod:`medseg.hub.install`: a release zip checked, extracted beside its target and swapped in
  with one rename;
* :mod:`medseg.hub.sources`: where releases come from (TotalSegmentator's GitHub releases,
  ``$MEDSEG_TOTALSEG_URL``; the MONAI model zoo, ``$MEDSEG_MONAI_ZOO_URL``) and where they land;
* :mod:`medseg.hub.totalseg`: TotalSegmentator tasks (licence, releases, pull, import);
* :mod:`medseg.hub.monai_zoo`: MONAI model-zoo bundles through ``monai.bundle.download``;
* :mod:`medseg.hub.offers`: what can be pulled and its state, for ``medseg models`` and the UI.

Nothing here sends a key, a token or usage statistics anywhere: a pull is plain GET requests
for the files it names.
"""
