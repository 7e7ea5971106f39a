"""Local stack runner for development, tests and benchmarks."""
