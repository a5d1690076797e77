"""comfy-init: the container init (PID 1) for ComfyUI GPU pods."""

__version__ = "0.1.0"
