"""The warmup config: ``lines`` parses it (pure), ``expand`` finds its files on the volume."""
