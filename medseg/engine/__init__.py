"""The engine: segmenting volumes with any model format, and writing the results.

* :mod:`.segmenter`: :class:`~medseg.engine.segmenter.Segmenter`, one model (or several
  merged) over the protocol of :mod:`medseg.models.base`, landing on the input's exact grid;
* :mod:`.batch`: many inputs (files, DICOM folders, zips, globs) into one output folder,
  resumable, one failing case never stopping the rest;
* :mod:`.outputs`: the files of one case (mask, volumes JSON/CSV, probabilities, instances);
* :mod:`.manifest`: what a finished case wrote, with checksums (for reruns);
* :mod:`.instances`: connected components of a label map as countable instances.
"""
