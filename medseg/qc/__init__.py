"""Quality flags: compare a segmentation with what its model saw in training."""
