"""Learned warm list: the usage journals pods write on the volume, and the ranking `@auto` warms."""
