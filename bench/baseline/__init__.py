"""The original design, kept only as a benchmark baseline."""
