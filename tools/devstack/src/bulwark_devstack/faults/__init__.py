"""Faults under load: owned dependencies stopped, started and slowed under a mixed load."""
