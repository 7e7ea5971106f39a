"""Bulwark auth service."""
