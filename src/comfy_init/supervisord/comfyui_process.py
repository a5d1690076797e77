"""ComfyUI's process as supervisord reports it: which program it is, and how it is asked about.

Two loops follow ComfyUI through supervisord's ``getProcessInfo``: PID 1's keeper
(``comfyui_keeper``: readiness lines, restart after FATAL) and the sidecar's prober (metrics,
the hang watchdog).  Both ask through ``ProgramStatus``, which never raises: it keeps the
latest answer, or why there was none, and notices each new process.
"""

from __future__ import annotations

from comfy_init.supervisord import rpc

# The supervisord program that runs ComfyUI (``[program:comfyui]``): comfy-init renders it,
# a user's template must keep it, supervisorctl and both loops address it by this name.
COMFYUI = "comfyui"
NOT_ASKED = "not asked yet"


class ProgramStatus:
    """What supervisord last said about one program (ComfyUI unless told otherwise)."""

    def __init__(self, client: rpc.Client, program: str = COMFYUI) -> None:
        self.client = client
        self.program = program
        self.info: rpc.ProcessInfo | None = None  # the last answer; None: no answer
        self.error = NOT_ASKED  # why the last question had no answer ("" if it had)
        self.pid = 0  # the newest process seen (0: none yet)
        self.new_process = False  # the last answer showed a process not seen before
        self.restarts = 0  # processes seen after the first one

    def ask(self) -> rpc.ProcessInfo | None:
        """Ask supervisord once; the answer, or None (``error`` says why)."""
        try:
            info = self.client.get_process_info(self.program)
        except (rpc.SupervisordUnavailable, rpc.RpcFault) as exc:
            self.info, self.error, self.new_process = None, str(exc), False
            return None
        self.new_process = info.pid not in (0, self.pid)
        if self.new_process:
            if self.pid:
                self.restarts += 1
            self.pid = info.pid
        self.info, self.error = info, ""
        return info

    def answered_before(self) -> bool:
        """The previous question had an answer, or none was asked: a failure now is news."""
        return self.info is not None or self.error == NOT_ASKED
