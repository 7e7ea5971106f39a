"""Bulwark users service."""
