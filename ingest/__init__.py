"""ingest: read cameras and files with PyAV, sample, encode and XADD frames to Redis Streams."""
