"""Shared plumbing for the Bulwark services. Nothing here knows about a specific service."""
