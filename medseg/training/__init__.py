"""Training medseg bundles.

* :mod:`.dataset`: MSD / nnU-Net-style dataset folders, validated;
* :mod:`.train`: the training loop (MONAI U-Net variants, Dice+Focal, DDP), writing a bundle;
* :mod:`.record`: the training record (intensity and volume statistics) stored in a bundle for
  the quality flags of :mod:`medseg.qc`.
"""
