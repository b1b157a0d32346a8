"""Sensors that wait for vendor tasks submitted elsewhere."""
