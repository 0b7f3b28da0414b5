"""api: the HTTP API (violations, snapshots, clips, cameras, reviews) and the review page it serves."""
