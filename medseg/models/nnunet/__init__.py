"""nnU-Net v2 result folders (and so TotalSegmentator models) run by medseg."""
