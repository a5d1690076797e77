"""Apply a rewritten config to a running supervisord, as ``supervisorctl update`` does.

Used once ComfyUI appears on a volume that was empty at start: the config is rendered again
(ComfyUI's interpreter can only be found once ComfyUI is there) and supervisord takes it
without a restart, so SSH sessions and the sidecar keep running.  A program whose section
changed is stopped, removed and added again; a new one is added; both then start if their
section says ``autostart=true``.  Programs whose sections did not change are not touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from comfy_init import logs
from comfy_init.supervisord import rpc

log = logs.get_logger("supervisord")


@dataclass(frozen=True)
class Changes:
    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]


def reload(client: rpc.Client) -> Changes:
    """Have supervisord re-read its config file; what differs from what it runs."""
    ((added, changed, removed),) = cast(list[Any], client.call("supervisor.reloadConfig"))
    return Changes(tuple(added), tuple(changed), tuple(removed))


def apply(client: rpc.Client, *, stop_timeout: float = 30.0) -> Changes:
    """Re-read the config and bring the running programs in line with it."""
    changes = reload(client)
    for name in (*changes.removed, *changes.changed):
        try:
            client.call("supervisor.stopProcessGroup", name, True, timeout=stop_timeout)
        except rpc.RpcFault as exc:
            if exc.fault_name != "NOT_RUNNING":
                raise
        client.call("supervisor.removeProcessGroup", name)
    for name in (*changes.changed, *changes.added):
        client.call("supervisor.addProcessGroup", name)
    log.info(
        "supervisord_config_applied",
        added=",".join(changes.added),
        changed=",".join(changes.changed),
        removed=",".join(changes.removed),
    )
    return changes
