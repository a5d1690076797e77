"""A small XML-RPC client for supervisord over its unix control socket.

supervisord's control socket (``[unix_http_server]``) speaks HTTP; the standard library's
``xmlrpc.client`` speaks XML-RPC over HTTP but only over TCP.  ``UnixStreamTransport``
bridges the two with an ``http.client.HTTPConnection`` whose ``connect`` opens the unix
socket.  Every call has a timeout and opens its own connection, so one ``Client`` can be
shared by threads.

Failures come in two kinds: ``SupervisordUnavailable`` (no socket, refused, timed out,
garbage on the wire) and ``RpcFault`` (supervisord answered with an XML-RPC fault, e.g.
``BAD_NAME`` or ``ALREADY_STARTED``; ``fault_name`` says which).
"""

from __future__ import annotations

import http.client
import socket
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

# supervisord's fault codes (supervisor.xmlrpc.Faults), by number.
FAULT_NAMES: dict[int, str] = {
    1: "UNKNOWN_METHOD",
    2: "INCORRECT_PARAMETERS",
    3: "BAD_ARGUMENTS",
    4: "SIGNATURE_UNSUPPORTED",
    6: "SHUTDOWN_STATE",
    10: "BAD_NAME",
    11: "BAD_SIGNAL",
    20: "NO_FILE",
    21: "NOT_EXECUTABLE",
    30: "FAILED",
    40: "ABNORMAL_TERMINATION",
    50: "SPAWN_ERROR",
    60: "ALREADY_STARTED",
    70: "NOT_RUNNING",
    80: "SUCCESS",
    90: "ALREADY_ADDED",
    91: "STILL_RUNNING",
    92: "CANT_REREAD",
}


class SupervisordUnavailable(Exception):
    """supervisord did not answer: socket missing, connection refused, timeout, bad reply."""


class RpcFault(Exception):
    """supervisord answered with an XML-RPC fault."""

    def __init__(self, method: str, code: int, text: str) -> None:
        self.method = method
        self.code = code
        self.fault_name = FAULT_NAMES.get(code, "UNKNOWN")
        self.text = text
        super().__init__(f"supervisord {method}: {text} (fault {code} {self.fault_name})")


@dataclass(frozen=True)
class ProcessInfo:
    """One program as supervisord sees it (``getProcessInfo``).

    ``exitstatus`` is 0 for a process that never ran or reached FATAL; read ``statename``
    and ``spawnerr`` to know why a process is not running.
    """

    name: str
    group: str
    statename: str  # STOPPED STARTING RUNNING BACKOFF STOPPING EXITED FATAL UNKNOWN
    pid: int  # 0 when not running
    start: int  # unix time of the last start, 0 if never started
    stop: int  # unix time of the last stop, 0 if never stopped
    now: int  # supervisord's clock when it answered
    exitstatus: int
    spawnerr: str
    description: str
    stdout_logfile: str
    stderr_logfile: str

    @classmethod
    def from_xmlrpc(cls, data: dict[str, Any]) -> ProcessInfo:
        return cls(
            name=str(data["name"]),
            group=str(data["group"]),
            statename=str(data["statename"]),
            pid=int(data.get("pid") or 0),
            start=int(data.get("start") or 0),
            stop=int(data.get("stop") or 0),
            now=int(data.get("now") or 0),
            exitstatus=int(data.get("exitstatus") or 0),
            spawnerr=str(data.get("spawnerr") or ""),
            description=str(data.get("description") or ""),
            stdout_logfile=str(data.get("stdout_logfile") or ""),
            stderr_logfile=str(data.get("stderr_logfile") or ""),
        )


class UnixStreamHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection over a unix stream socket instead of TCP."""

    def __init__(self, socket_path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class UnixStreamTransport(xmlrpc.client.Transport):
    """``xmlrpc.client`` transport that talks to ``socket_path``; the URL host is ignored."""

    def __init__(self, socket_path: str | Path, timeout: float) -> None:
        super().__init__()
        self.socket_path = str(socket_path)
        self.timeout = timeout

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        conn = UnixStreamHTTPConnection(self.socket_path, self.timeout)
        # The base class closes what it finds here in ``close()``, also after an error.
        self._connection = (host, conn)
        return conn


class Client:
    """supervisord's XML-RPC interface at ``socket_path`` (``Settings.supervisord_socket``).

    ``timeout`` bounds every call.  Calls with ``wait=True`` block inside supervisord until
    the process has started (``startsecs``) or stopped (up to ``stopwaitsecs``): pass a
    ``timeout`` longer than those.
    """

    def __init__(self, socket_path: str | Path, timeout: float = 5.0) -> None:
        self.socket_path = Path(socket_path)
        self.timeout = timeout

    def call(self, method: str, *params: Any, timeout: float | None = None) -> Any:
        """Call ``method`` (e.g. ``supervisor.getState``) and return its decoded result."""
        transport = UnixStreamTransport(self.socket_path, timeout or self.timeout)
        proxy = xmlrpc.client.ServerProxy("http://localhost/RPC2", transport=transport)
        try:
            return getattr(proxy, method)(*params)
        except xmlrpc.client.Fault as fault:
            raise RpcFault(method, int(fault.faultCode), str(fault.faultString)) from fault
        except (OSError, http.client.HTTPException, xmlrpc.client.Error) as exc:
            raise SupervisordUnavailable(
                f"supervisord at {self.socket_path}: {method} failed: {exc}"
            ) from exc
        except Exception as exc:  # malformed XML from a wrong peer, e.g. ExpatError
            raise SupervisordUnavailable(
                f"supervisord at {self.socket_path}: {method} got a bad reply: {exc!r}"
            ) from exc
        finally:
            transport.close()

    def get_process_info(self, name: str) -> ProcessInfo:
        data = cast(dict[str, Any], self.call("supervisor.getProcessInfo", name))
        return ProcessInfo.from_xmlrpc(data)

    def start_process(self, name: str, *, wait: bool = True, timeout: float | None = None) -> bool:
        """Start ``name``; with ``wait`` return once it is RUNNING (after ``startsecs``)."""
        return bool(self.call("supervisor.startProcess", name, wait, timeout=timeout))

    def stop_process(self, name: str, *, wait: bool = True, timeout: float | None = None) -> bool:
        """Stop ``name`` (stopsignal, then KILL after ``stopwaitsecs``)."""
        return bool(self.call("supervisor.stopProcess", name, wait, timeout=timeout))
