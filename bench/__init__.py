"""Benchmarks of comfy-init (not part of the installed package); run from the repository root."""
