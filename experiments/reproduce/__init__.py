"""Kept for old commands and imports: see `experiments`."""
