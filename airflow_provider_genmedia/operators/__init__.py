"""Operators of the genmedia provider."""
