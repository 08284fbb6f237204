"""Validators: each returns a list of findings for a parsed input; none raises for content."""
