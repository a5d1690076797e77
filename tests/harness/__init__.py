"""What the tests and the benchmarks share to run comfy-init and the ComfyUI stand-in.

- ``polling``: ``wait_for``, the one poll-with-a-deadline;
- ``loopback``: a free port, one HTTP request to 127.0.0.1;
- ``procfs``: signal masks, state, PID namespace and role of a process, from ``/proc``;
- ``pid1``: ``Pid1``, ``/init`` as PID 1 of a fresh PID namespace (``unshare``);
- ``boots``: a fresh configuration per test run and the stand-in's records;
- ``standin``: the stand-in's fake install and ``StandinProcess``;
- ``certs``: certificates (``openssl``), bcrypt hashes and web config files for the metrics
  port.
- ``supervisord``: a real supervisord on a minimal config of ``sleep`` programs;
- ``podman``: the image built with podman and run as containers (``Container``).

``tests/`` is on the import path: pytest puts it there (rootdir without ``__init__.py``),
``bench/__init__.py`` does for the benchmarks.
"""
