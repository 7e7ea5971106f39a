"""Bulwark api service."""
