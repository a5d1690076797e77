"""The web config read again when it, or a file it names, changes: a renewed certificate (a
Kubernetes Secret updated in place, say) or a new password is used without a restart, as
exporter-toolkit does.

The serving thread asks at each wake-up that accepts connections; the question is a few
``stat`` calls.  A new version that does not load is logged and the last good one kept.
"""

from __future__ import annotations

from pathlib import Path

from comfy_init import logs
from comfy_init.errors import ConfigError
from comfy_init.sidecar import web_config
from comfy_init.sidecar.web_config import WebConfig

log = logs.get_logger("metrics.web_reload")

Signature = tuple[tuple[int, int, int] | None, ...]


def files_of(config: WebConfig) -> tuple[Path, ...]:
    """The web config file and the files it names."""
    tls = config.tls
    named = (tls.cert_file, tls.key_file, tls.client_ca_file) if tls is not None else ()
    return (config.path, *(p for p in named if p is not None))


def signature(paths: tuple[Path, ...]) -> Signature:
    """What changes when a file is rewritten or replaced (inode, size, mtime)."""
    found: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            found.append(None)
        else:
            found.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(found)


class WebReload:
    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self._seen = signature(files_of(config))

    def check(self) -> WebConfig | None:
        """The new web config if a file changed and it loads; else None (keep the one in
        use)."""
        now = signature(files_of(self.config))
        if now == self._seen:
            return None
        self._seen = now  # a bad version is reported once, not at every connection
        try:
            new = web_config.load(self.config.path)
        except ConfigError as exc:
            log.error(
                "metrics_web_config_reload_failed",
                error=str(exc),
                effect="the last good web config stays in use",
            )
            return None
        self.config = new
        self._seen = signature(files_of(new))
        log.info(
            "metrics_web_config_reloaded",
            path=str(new.path),
            tls=new.tls is not None,
            basic_auth=bool(new.users),
        )
        return new
