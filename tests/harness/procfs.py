"""What ``/proc`` says about a process: its signal masks, state, process group, PID namespace
and role in a comfy-init boot.  A process that is gone reads as empty, never as an error."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import psutil


def status_fields(pid: int | str) -> dict[str, str]:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return {}
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def stat_fields(pid: int | str) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name: state, ppid, pgrp, …"""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text.rsplit(")", 1)[1].split()


def catches_or_blocks(pid: int, signum: int) -> bool:
    """True once ``pid`` has a handler for, or blocks, ``signum`` (so a signal is kept)."""
    fields = status_fields(pid)
    bit = 1 << (signum - 1)
    return any(int(fields.get(k, "0").strip(), 16) & bit for k in ("SigBlk", "SigCgt"))


def first_child(pid: int) -> int | None:
    """The first child ``pid`` forked (``/proc/<pid>/task/<pid>/children``), if any yet."""
    try:
        words = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return None
    return int(words[0]) if words else None


def namespace_members(pid: int) -> dict[int, int]:
    """{pid inside the namespace: host pid} for every process in ``pid``'s PID namespace."""
    try:
        ns = os.readlink(f"/proc/{pid}/ns/pid")
    except (FileNotFoundError, ProcessLookupError):
        return {}
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "ns" / "pid") != ns:
                continue
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        nspid = status_fields(entry.name).get("NSpid", "").split()
        if len(nspid) >= 2:
            found[int(nspid[-1])] = int(entry.name)
    return found


def role(argv: list[str]) -> str | None:
    """Which part of a comfy-init boot a command line is: supervisord, comfyui (the
    stand-in's ``main.py``), sidecar (``comfy_init metrics``), warmup; None for others."""
    names = [Path(a).name for a in argv[:4]]
    if "supervisord" in names:
        return "supervisord"
    if "main.py" in names:
        return "comfyui"
    if "comfy_init" in argv:
        for found, word in (("sidecar", "metrics"), ("warmup", "warmup")):
            if word in argv[argv.index("comfy_init") :]:
                return found
    return None


def descendants_by_role(pid: int) -> dict[str, psutil.Process]:
    """{role: process} for ``pid``'s descendants now (the first of each role)."""
    found: dict[str, psutil.Process] = {}
    for proc in psutil.Process(pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            name = role(proc.cmdline())
            if name is not None:
                found.setdefault(name, proc)
    return found
