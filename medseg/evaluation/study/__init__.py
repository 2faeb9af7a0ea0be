"""Clinical validation studies on top of :mod:`medseg.evaluation` (one concept per module).

* :mod:`.paired`: two models on the same cases (paired bootstrap CI of the mean
  difference, Wilcoxon signed-rank test, win/tie/loss, non-inferiority margin, Holm).
* :mod:`.compare`: ``medseg compare``, several prediction folders against one
  reference folder.
* :mod:`.criteria`: pre-registered acceptance criteria judged PASS or FAIL.
* :mod:`.subgroups`: summaries per site / scanner / sex from a metadata table,
  and DICOM tags offered as metadata without patient identifiers.
* :mod:`~medseg.evaluation.agreement`: volume agreement (Bland-Altman, Lin's concordance).
* :mod:`.readers`: several human readers, STAPLE consensus, inter-reader spread.
* :mod:`~medseg.evaluation.report.methods`: a methods paragraph generated from the settings.

Everything here works on the per-case rows that :func:`medseg.evaluation.run.evaluate_folders`
returns (one dict per case and class); nothing here reads images except the readers module.
"""
