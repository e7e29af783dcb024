"""The data: reading it (frames), the demo dataset (fetch) and new batches (ingest)."""
