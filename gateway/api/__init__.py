"""HTTP API (FastAPI): inbound documents, patient records, operations."""
