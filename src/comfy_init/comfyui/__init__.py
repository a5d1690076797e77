"""What comfy-init knows about ComfyUI: its model-path YAML and its HTTP API."""
