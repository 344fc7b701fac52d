"""`make bench`: speed and memory figures, each beside its limit."""
