"""The metrics sidecar: Prometheus /metrics, /healthz, /readyz, the watchdog and write-back."""
