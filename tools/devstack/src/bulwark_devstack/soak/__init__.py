"""Soak: mixed load at ~60 % of capacity, resources and latency sampled over time."""
