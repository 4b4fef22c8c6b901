"""Scoring alerts against labelled events."""
