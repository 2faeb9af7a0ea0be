"""Training the click3d promptable model (:mod:`medseg.models.click3d`).

* :mod:`.shapes`: synthetic crops, random label maps painted with random contrasts;
* :mod:`.sources`: crops of the bundled datasets' training splits, held-out classes never a
  target;
* :mod:`.clicks`: simulated prompts (first click, boxes, rough masks, correcting clicks);
* :mod:`.settings`: the settings of a run;
* :mod:`.feed`: drawing the crops, in worker processes or in the training process;
* :mod:`.loop`: the training loop, validation and checkpoints (complete model folders).
"""
