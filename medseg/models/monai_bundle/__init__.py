"""MONAI bundles (model-zoo layout) run by medseg: :mod:`.layout` finds the files and reads
the metadata, :mod:`.trust` decides whether the configs may run, :mod:`.model` runs them."""
