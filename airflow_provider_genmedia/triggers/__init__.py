"""Triggers that wait for vendor tasks in the triggerer."""
