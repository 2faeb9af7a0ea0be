"""TotalSegmentator's tasks run by medseg exactly as TotalSegmentator 2.18.0 runs them.

One module per concept: :mod:`.tasks` (the task table and where weights live), :mod:`.status`
(which weight folders are present), :mod:`.geometry` (crop, closest-canonical, TotalSegmentator's
resampling), :mod:`.pipeline` (one task on one image), :mod:`.model` (the
:class:`~medseg.models.base.SegmentationModel`).
"""
