"""Readers and column mapping: where a reading enters wattwatch."""
