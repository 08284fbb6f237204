"""Sender authentication, authorisation and connection limits (see docs/security.md)."""
