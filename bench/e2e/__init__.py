"""The end-to-end benchmark: comfy-init as PID 1, from spawn to loaded models, with and
without warmup (``python -m bench.e2e``; ``__main__`` says more).

``models`` makes real safetensors files, ``load`` loads them as ComfyUI does, ``modes``
times one start per warmup mode (PID 1 through the tests' harness, ``tests/harness/``),
``footprint`` measures the init's own memory and CPU, ``results`` and ``plot`` report.
"""
