"""Published OVSeg weights (placeholder until the weights table gains non-Hub hosts)."""
