"""Evaluation: scoring predictions against references, and what is built on the scores.

One wing, its arrows running one way (top to bottom; checked by import-linter):

* :mod:`.study`: clinical validation studies (paired comparison, criteria, subgroups, readers);
* :mod:`.run`: :func:`~medseg.evaluation.run.evaluate_folders`, scoring plus the report;
* :mod:`.report`: the report files (CSV, JSON, HTML, PDF, plots, gallery);
* :mod:`.scoring`: two folders scored case by case in a process pool (nothing written);
* :mod:`.pairs`: one pair of label maps scored; folders paired by case name;
* :mod:`.options`: :class:`~medseg.evaluation.options.EvaluationOptions`;
* :mod:`.stats`, :mod:`.agreement`: cohort statistics (bootstrap CIs, Bland-Altman, CCC);
* :mod:`.metrics`: the per-class metrics, pure numpy functions.
"""
