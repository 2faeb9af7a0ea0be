"""Segmenting studies where they live: a PACS reached over DICOMweb.

One concern per module:

- :mod:`~medseg.pacs.auth`: credentials (HTTP basic or a bearer token) from the environment or a
  private file, never from the command line;
- :mod:`~medseg.pacs.client`: the server's address, TLS settings and the ``dicomweb-client``
  session, and the mapping of transport failures to one-line errors naming the server;
- :mod:`~medseg.pacs.query`: QIDO-RS study and series listings (patient-free columns by
  default) and the choice of a series by modality;
- :mod:`~medseg.pacs.retrieve`: WADO-RS download of one series into a folder, bounded by the
  same limits as zip archives;
- :mod:`~medseg.pacs.store`: the SEG as stored into the source study (STOW-RS);
- :mod:`~medseg.pacs.worklist`: studies from ``--study`` and CSV worklists, planned into cases;
- :mod:`~medseg.pacs.batch`: the per-series loop (download,
                                                  :func:`medseg.engine.batch.segment_cases`,
  push) with one summary row per case.
"""
