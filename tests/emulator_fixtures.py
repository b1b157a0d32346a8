"""Fixtures that run the local emulator of the four vendor APIs (filled in by the emulator issue)."""
