"""Preflight: every cell of a command line checked against the schema before anything is written."""
