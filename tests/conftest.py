"""Fixtures shared by every Slipway test."""
