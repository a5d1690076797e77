"""Benchmarks of comfy-init (not part of the installed package); run from the repository root.

One package per benchmark, each run as ``python -m bench.<name>``: ``warmup`` (the warmup
against cp and rsync), ``e2e`` (spawn to loaded models, with and without warmup),
``small_files`` (many small files on local disk), ``autolist`` (the learned warm list,
a trace replay); ``slowfs`` is the slow network-volume
stand-in they share.  Shared pieces: ``caches`` (page cache), ``model_files`` (filler model
files made once), ``commands`` (timed commands, byte-for-byte checks), ``outputs`` (where
results go), ``table`` (Markdown cells and verdicts).

The benchmarks start comfy-init and the ComfyUI stand-in with the tests' harness
(``tests/harness/``, ``tests/comfyui_standin/``): ``tests/`` goes on the import path here, as
pytest puts it there for the tests.
"""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "tests") not in sys.path:
    sys.path.append(str(REPO / "tests"))
