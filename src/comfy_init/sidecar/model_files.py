"""What counts as a model file, and where a path sits in a models tree.

ComfyUI lists and resolves only files with its model extensions (``folder_paths.py``:
``supported_pt_extensions``); temporary names (``*.comfy-init-partial``, ``*.part``,
``*.tmp``) and hidden files are never models.  The first component below a models root is
the model type (``checkpoints``, ``loras``, ``unet``, ...).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

MODEL_EXTENSIONS: frozenset[str] = frozenset(
    {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}
)


def is_model_name(name: str) -> bool:
    """True for a file name ComfyUI would list as a model (and we therefore watch)."""
    if not name or name.startswith("."):
        return False
    return os.path.splitext(name)[1].lower() in MODEL_EXTENSIONS


def type_and_name(root: Path, path: Path) -> tuple[str, str] | None:
    """``(type, name)`` of ``path`` below ``root`` (``name`` may contain subfolders), or
    None if ``path`` is not at least two levels below ``root`` or passes through a hidden
    folder."""
    try:
        rel = path.relative_to(root)
    except ValueError:
        return None
    parts = rel.parts
    if len(parts) < 2 or any(p.startswith(".") for p in parts):
        return None
    return parts[0], "/".join(parts[1:])


def name_below(folder: Path, path: Path) -> str | None:
    """The name of ``path`` in the type folder ``folder`` (may contain subfolders), or None
    if it is not below it or passes through a hidden folder."""
    try:
        parts = path.relative_to(folder).parts
    except ValueError:
        return None
    if not parts or any(p.startswith(".") for p in parts):
        return None
    return "/".join(parts)


def walk_model_files(root: Path) -> Iterator[tuple[str, str, Path]]:
    """``(type, name, path)`` of every model file below ``root``'s type directories.

    Follows symlinked directories once (a loop is cut by device/inode); unreadable
    directories are skipped.  Raises FileNotFoundError only if ``root`` itself is missing.
    """
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a directory")
    seen: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            st = folder.stat()
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir():
                    if not entry.name.startswith("."):
                        stack.append(Path(entry.path))
                elif folder != root and entry.is_file() and is_model_name(entry.name):
                    located = type_and_name(root, Path(entry.path))
                    if located is not None:
                        yield located[0], located[1], Path(entry.path)
            except OSError:
                continue
