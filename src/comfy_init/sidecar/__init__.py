"""The sidecar process (``comfy-init metrics``, supervisord program ``metrics``) beside ComfyUI:
Prometheus ``/metrics``, ``/healthz``, ``/readyz``; restarts a hung ComfyUI; returns downloads
to the volume."""
