"""Clinical validation studies on top of :mod:`medseg.evaluation` (one concept per module).

* :mod:`~medseg.study.paired`: two models on the same cases (paired bootstrap CI of the mean
  difference, Wilcoxon signed-rank test, win/tie/loss, non-inferiority margin, Holm).
* :mod:`~medseg.study.compare`: ``medseg compare``, several prediction folders against one
  reference folder.
* :mod:`~medseg.study.criteria`: pre-registered acceptance criteria judged PASS or FAIL.
* :mod:`~medseg.study.subgroups`: summaries per site / scanner / sex from a metadata table,
  and DICOM tags offered as metadata without patient identifiers.
* :mod:`~medseg.study.agreement`: volume agreement (Bland-Altman, Lin's concordance).
* :mod:`~medseg.study.readers`: several human readers, STAPLE consensus, inter-reader spread.
* :mod:`~medseg.study.methods`: a methods paragraph generated from the settings.

Everything here works on the per-case rows that :func:`medseg.evaluation.evaluate_folders`
returns (one dict per case and class); nothing here reads images except the readers module.
"""
