"""A ComfyUI stand-in for comfy-init's tests: same command line, model-path rules, HTTP answers
and signal behaviour as ComfyUI's ``main.py``, with no torch and no GPU.  Standard library only
(PyYAML when an extra-paths YAML is loaded).  Test knobs are ``STANDIN_*`` environment
variables; see README.md beside this file.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import mmap
import os
import signal
import socket
import struct
import sys
import threading
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import folder_paths
import recorder
import safetensors_file
import stray_processes

VERSION = "0.3.64"
DEVICE_NAME = "cuda:0 NVIDIA H100 80GB HBM3 : cudaMallocAsync"
BASE = os.path.dirname(os.path.realpath(__file__))
IPV6_MISSING = (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL)
STOPPING_SIGNALS = ("INT", "TERM", "HUP", "QUIT", "USR1", "USR2")


def say(line: str) -> None:
    """One start-up line on stdout, flushed; a closed stdout is ignored as logging would."""
    with contextlib.suppress(OSError):
        print(line, flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--listen", type=str, default="127.0.0.1", metavar="IP", nargs="?", const="0.0.0.0,::"
    )
    parser.add_argument("--port", type=int, default=8188)
    parser.add_argument(
        "--extra-model-paths-config",
        type=str,
        default=None,
        metavar="PATH",
        nargs="+",
        action="append",
    )
    parser.add_argument("--disable-metadata", action="store_true")
    parser.add_argument("--auto-launch", action="store_true")
    parser.add_argument("--disable-auto-launch", action="store_true")
    vram = parser.add_mutually_exclusive_group()
    for flag in ("--gpu-only", "--highvram", "--normalvram", "--lowvram", "--novram", "--cpu"):
        vram.add_argument(flag, action="store_true")
    return parser.parse_args(argv)


def build_paths(args: argparse.Namespace) -> folder_paths.FolderPaths:
    """Model paths in ComfyUI's order: built-ins, the install's YAML, each flag's YAML."""
    paths = folder_paths.FolderPaths(BASE)
    own = os.path.join(BASE, "extra_model_paths.yaml")
    if os.path.isfile(own):
        paths.load_yaml_file(own, say)
    for group in args.extra_model_paths_config or []:
        for yaml_path in group:
            paths.load_yaml_file(yaml_path, say)
    paths.add_output_folders(os.path.join(BASE, "output"))
    return paths


class State:
    def __init__(self, args: argparse.Namespace, paths: folder_paths.FolderPaths) -> None:
        self.args = args
        self.paths = paths
        self.unhung = threading.Event()
        self.unhung.set()
        self.queue_running: list[Any] = []
        self.queue_pending: list[Any] = []

    def system_stats(self) -> dict[str, Any]:
        env = os.environ.get
        ram_total = int(env("STANDIN_RAM_TOTAL", str(270_000_000_000)))
        ram_free = int(env("STANDIN_RAM_FREE", str(250_000_000_000)))
        if self.args.cpu:
            device: dict[str, Any] = {
                "name": "cpu",
                "type": "cpu",
                "index": None,
                "vram_total": ram_total,
                "vram_free": ram_free,
                "torch_vram_total": ram_total,
                "torch_vram_free": ram_free,
            }
        else:
            device = {
                "name": env("STANDIN_DEVICE_NAME", DEVICE_NAME),
                "type": "cuda",
                "index": 0,
                "vram_total": int(env("STANDIN_VRAM_TOTAL", str(85_029_158_912))),
                "vram_free": int(env("STANDIN_VRAM_FREE", str(84_460_322_816))),
                "torch_vram_total": int(env("STANDIN_TORCH_VRAM_TOTAL", "0")),
                "torch_vram_free": int(env("STANDIN_TORCH_VRAM_FREE", "0")),
            }
        embedded = os.path.basename(os.path.dirname(sys.executable)) == "python_embeded"
        return {
            "system": {
                "os": os.name,
                "ram_total": ram_total,
                "ram_free": ram_free,
                "comfyui_version": VERSION,
                "required_frontend_version": "1.27.10",
                "installed_templates_version": "0.1.94",
                "required_templates_version": "0.1.94",
                "python_version": sys.version,
                "pytorch_version": env("STANDIN_PYTORCH_VERSION", "2.8.0+cu128"),
                "embedded_python": embedded,
                "argv": sys.argv,
            },
            "devices": [device],
        }

    def checkpoint_loader_info(self) -> dict[str, Any]:
        outputs = ["MODEL", "CLIP", "VAE"]
        return {
            "input": {
                "required": {
                    "ckpt_name": [
                        self.paths.filename_list("checkpoints"),
                        {"tooltip": "The name of the checkpoint (model) to load."},
                    ]
                }
            },
            "input_order": {"required": ["ckpt_name"]},
            "output": outputs,
            "output_is_list": [False] * 3,
            "output_name": outputs,
            "name": "CheckpointLoaderSimple",
            "display_name": "Load Checkpoint",
            "description": "Loads a diffusion model checkpoint, diffusion models are used to "
            "denoise latents.",
            "python_module": "nodes",
            "category": "loaders",
            "output_node": False,
            "output_tooltips": [
                "The model used for denoising latents.",
                "The CLIP model used for encoding text prompts.",
                "The VAE model used for encoding and decoding images to and from latent space.",
            ],
        }

    def view_metadata(self, folder: str, query: dict[str, str]) -> tuple[int, Any]:
        filename = query.get("filename")
        if filename is None or not filename.endswith(".safetensors"):
            return 404, None
        path = self.paths.full_path(folder, filename)
        if path is None:
            return 404, None
        raw = safetensors_file.read_header(path, max_size=1024 * 1024)
        if raw is None:
            return 404, None
        header = json.loads(raw)
        if "__metadata__" not in header:
            return 404, None
        return 200, header["__metadata__"]

    def load(self, folder: str, filename: str, tensors: bool = False) -> tuple[int, Any]:
        """Load a model as ComfyUI does: resolve, open, mmap, parse header, then touch every
        page, or with ``tensors`` copy each tensor out of the map into memory of its own (what
        ``safetensors.safe_open(...).get_tensor(k)`` does for every key in ComfyUI's
        ``load_torch_file``), keeping them all until the load is done."""
        started = time.monotonic()
        path = self.paths.full_path(folder, filename)
        if path is None:
            return 404, {
                "error": f"Model in folder '{folder}' with filename '{filename}' not found."
            }
        recorder.record(event="load", path=path)
        count = 0
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            (length,) = struct.unpack("<Q", m[:8])
            header = json.loads(m[8 : 8 + length])
            base = 8 + length
            if tensors:
                state_dict: dict[str, bytes] = {}
                for key, info in header.items():
                    if key != "__metadata__":
                        begin, end = info["data_offsets"]
                        state_dict[key] = m[base + begin : base + end]  # a copy (bytes)
                count = len(state_dict)
                del state_dict
            else:
                touched = 0
                for offset in range(base, len(m), mmap.PAGESIZE):
                    touched ^= m[offset]
            size = len(m)
        body: dict[str, Any] = {"path": path, "bytes": size, "seconds": time.monotonic() - started}
        if tensors:
            body["tensors"] = count
        return 200, body


class Handler(BaseHTTPRequestHandler):
    server_version = "ComfyUI-standin"
    state: State  # set on the subclass made per server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # ComfyUI runs aiohttp without an access log

    def reply(self, status: int, body: Any) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.dispatch("GET")

    def do_POST(self) -> None:
        self.dispatch("POST")

    def dispatch(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        parts = [urllib.parse.unquote(p) for p in url.path.split("/")[1:]]
        query = dict(urllib.parse.parse_qsl(url.query))
        if parts[0] != "standin":
            self.state.unhung.wait()  # /standin/hang: every other request hangs
        try:
            status, body = self.route(method, parts, query)
        except Exception as exc:
            traceback.print_exc()
            status, body = 500, {"error": f"{type(exc).__name__}: {exc}"}
        self.reply(status, body)

    def route(self, method: str, parts: list[str], query: dict[str, str]) -> tuple[int, Any]:
        if method == "POST" and parts[0] == "standin" and len(parts) == 2:
            return self.control(parts[1], query)
        if method != "GET":
            return 405, None
        state = self.state
        result: tuple[int, Any] = (404, None)
        match parts:
            case ["system_stats"]:
                result = 200, state.system_stats()
            case ["queue"]:
                result = (
                    200,
                    {
                        "queue_running": state.queue_running,
                        "queue_pending": state.queue_pending,
                    },
                )
            case ["object_info", "CheckpointLoaderSimple"]:
                result = 200, {parts[1]: state.checkpoint_loader_info()}
            case ["object_info", _]:
                result = 200, {}
            case ["models"]:
                result = 200, list(state.paths.folders)
            case ["models", folder] if folder in state.paths.folders:
                result = 200, state.paths.filename_list(folder)
            case ["view_metadata", folder]:
                result = state.view_metadata(folder, query)
            case ["internal", "folder_paths"]:
                result = 200, {name: paths for name, (paths, _) in state.paths.folders.items()}
        return result

    def control(self, action: str, query: dict[str, str]) -> tuple[int, Any]:
        state = self.state
        result: tuple[int, Any] = (404, None)
        match action:
            case "hang":
                state.unhung.clear()
                result = 200, {"hanging": True}
            case "unhang":
                state.unhung.set()
                result = 200, {"hanging": False}
            case "queue":
                running, pending = int(query.get("running", "0")), int(query.get("pending", "0"))
                state.queue_running = [fake_job(i) for i in range(running)]
                state.queue_pending = [fake_job(running + i) for i in range(pending)]
                result = 200, {"running": running, "pending": pending}
            case "orphans":
                result = (
                    200,
                    {
                        "pids": stray_processes.spawn_orphans(
                            min(int(query.get("n", "100")), 10_000)
                        )
                    },
                )
            case "escape":
                pid = stray_processes.spawn_escapee()
                recorder.record(event="escape", pid=pid)
                result = 200, {"pid": pid}
            case "load":
                result = state.load(
                    query.get("folder", ""),
                    query.get("filename", ""),
                    tensors=query.get("tensors") == "1",
                )
        return result


def fake_job(number: int) -> list[Any]:
    """A queue entry shaped like ComfyUI's: [number, prompt_id, prompt, extra_data, outputs]."""
    return [number, f"standin-{number:08d}", {}, {"client_id": "standin"}, []]


def serve(state: State, address: str, port: int) -> int:
    """Bind one address in a daemon thread; return the bound port."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET

    class Server(ThreadingHTTPServer):
        address_family = family
        daemon_threads = True

        def server_bind(self) -> None:
            if family == socket.AF_INET6:
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            super().server_bind()

    handler = type("BoundHandler", (Handler,), {"state": state})
    server = Server((address, port), handler)
    # Server threads block the stop signals, so the kernel delivers them to the main thread:
    # a signal taken by another thread would not wake the main thread's sleep.
    stops = {getattr(signal, "SIG" + name) for name in STOPPING_SIGNALS}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, stops)
    try:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return int(server.server_address[1])


def on_signal(signum: int, _frame: object) -> None:
    ignored = signal.Signals(signum).name[3:] in _ignored()
    recorder.record(event="signal", signum=signum, ignored=ignored)
    if ignored:
        return
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    die_by(signum)


def die_by(signum: int) -> None:
    """Die of ``signum`` with its default action, as an unhandled signal would kill ComfyUI."""
    recorder.record(event="exit", code=-signum)
    sys.stdout.flush()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    os._exit(128 + signum)  # only reached for a signal whose default action is not to die


def _ignored() -> set[str]:
    raw = os.environ.get("STANDIN_IGNORE", "")
    return {s.strip().upper().removeprefix("SIG") for s in raw.split(",") if s.strip()}


def run(argv: list[str]) -> int:
    for name in STOPPING_SIGNALS:
        signal.signal(getattr(signal, "SIG" + name), on_signal)
    try:  # start-up is outside ComfyUI's try: an interrupt here kills the interpreter
        exit_code = os.environ.get("STANDIN_EXIT_CODE")
        if exit_code:
            say(f"comfyui stand-in: exiting with STANDIN_EXIT_CODE={exit_code}")
            return int(exit_code)
        args = parse_args(argv)
        say(f"Python version: {sys.version}")
        say(f"ComfyUI version: {VERSION}")
        paths = build_paths(args)
        time.sleep(float(os.environ.get("STANDIN_STARTUP_DELAY", "0")))  # "custom nodes"
        state = State(args, paths)
        say("Starting server\n")
        ports = []
        for address in args.listen.split(","):
            try:
                ports.append(serve(state, address, args.port))
            except OSError as exc:  # a host without IPv6 still serves on the IPv4 address
                if ":" not in address or exc.errno not in IPV6_MISSING:
                    raise
                say(f"comfyui stand-in: cannot listen on {address}: {exc}")
                continue
            shown = f"[{address}]" if ":" in address else address
            say(f"To see the GUI go to: http://{shown}:{ports[-1]}")
        recorder.record(event="listening", addresses=args.listen.split(","), port=ports[0])
    except KeyboardInterrupt:
        die_by(signal.SIGINT)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        say("\nStopped server")
    return 0


if __name__ == "__main__":
    recorder.start_record()
    try:
        code = run(sys.argv[1:])
    except SystemExit as exc:  # argparse errors (2)
        recorder.record(event="exit", code=exc.code if isinstance(exc.code, int) else 1)
        raise
    except BaseException:
        recorder.record(event="exit", code=1)
        raise
    recorder.record(event="exit", code=code)
    sys.exit(code)
