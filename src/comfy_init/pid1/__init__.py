"""PID 1 duties: early signal capture, reaping, child supervision, bounded shutdown."""
