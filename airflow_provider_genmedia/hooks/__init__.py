"""Hooks of the genmedia provider."""
