"""Files written so that no reader ever sees a part, and bytes moved between files in the
kernel: the I/O primitives the warmup, the ComfyUI paths file, supervisord's config and the
sidecar's download return share."""
