"""MONAI bundles (model-zoo layout) run by medseg."""
