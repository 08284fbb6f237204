"""CDA R2 documents: hardened parsing and metadata extraction."""
