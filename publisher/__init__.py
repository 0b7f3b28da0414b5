"""publisher: turn results into events, violations, clips and metrics."""
