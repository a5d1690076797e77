"""Trace replay of the learned warm list (`@auto`) against a static list and Belady."""
