"""Training images synthesised from label maps (domain randomisation, SynthSeg-style)."""
