"""Warmup: copy the configured models from the volume to the local cache."""
