"""Model search paths of the ComfyUI stand-in, following ComfyUI's own rules.

Behaviour imitated (ComfyUI ``folder_paths.py``, ``utils/extra_config.py``, ``main.py``):

* every known folder name starts with its built-in ``<base>/models/<name>`` directory (two for
  ``text_encoders``/``diffusion_models``/``controlnet``) and its extension set;
* legacy names map on every call: ``unet`` -> ``diffusion_models``, ``clip`` -> ``text_encoders``;
* ``add_path`` appends, or with ``is_default`` truthy inserts at position 0 (an existing entry
  is moved to the front instead of duplicated); an unknown name gets a new entry that lists
  every file;
* an extra-paths YAML is read section by section: ``base_path`` (``~`` and ``$VARS`` expanded,
  relative to the YAML's directory) is joined with each line; without it a relative line is
  relative to the YAML's directory; a value is split on newlines into several paths; a value
  that is not a string (e.g. a YAML list) raises, so start-up crashes as ComfyUI's does;
* ``full_path`` stats every candidate on every call, first existing *file* wins;
* ``filename_list`` walks every directory of the folder (following links, skipping ``.git``)
  and keeps names whose extension is in the folder's set. Unlike ComfyUI it never caches.

Standard library only (PyYAML is imported when a YAML file is loaded).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

MODEL_EXTENSIONS = frozenset(
    {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}
)

LEGACY_NAMES = {"unet": "diffusion_models", "clip": "text_encoders"}

# (folder name, directories under models/, extensions); order as ComfyUI registers them.
# An empty extension set lists every file; {""} lists files without an extension.
_BUILT_IN: tuple[tuple[str, tuple[str, ...], frozenset[str]], ...] = (
    ("checkpoints", ("checkpoints",), MODEL_EXTENSIONS),
    ("configs", ("configs",), frozenset({".yaml"})),
    ("loras", ("loras",), MODEL_EXTENSIONS),
    ("vae", ("vae",), MODEL_EXTENSIONS),
    ("text_encoders", ("text_encoders", "clip"), MODEL_EXTENSIONS),
    ("diffusion_models", ("unet", "diffusion_models"), MODEL_EXTENSIONS),
    ("clip_vision", ("clip_vision",), MODEL_EXTENSIONS),
    ("style_models", ("style_models",), MODEL_EXTENSIONS),
    ("embeddings", ("embeddings",), MODEL_EXTENSIONS),
    ("diffusers", ("diffusers",), frozenset({"folder"})),
    ("vae_approx", ("vae_approx",), MODEL_EXTENSIONS),
    ("controlnet", ("controlnet", "t2i_adapter"), MODEL_EXTENSIONS),
    ("gligen", ("gligen",), MODEL_EXTENSIONS),
    ("upscale_models", ("upscale_models",), MODEL_EXTENSIONS),
    ("hypernetworks", ("hypernetworks",), MODEL_EXTENSIONS),
    ("photomaker", ("photomaker",), MODEL_EXTENSIONS),
    ("classifiers", ("classifiers",), frozenset({""})),
    ("model_patches", ("model_patches",), MODEL_EXTENSIONS),
    ("audio_encoders", ("audio_encoders",), MODEL_EXTENSIONS),
)

# Every directory name created under models/ by a fresh install (both legacy names included).
MODEL_DIR_NAMES: tuple[str, ...] = tuple(d for _, dirs, _ in _BUILT_IN for d in dirs)

# Folders ComfyUI's main.py appends under the output directory after loading the YAML files.
_OUTPUT_FOLDERS = ("checkpoints", "clip", "vae", "diffusion_models", "loras")


def map_legacy(folder: str) -> str:
    return LEGACY_NAMES.get(folder, folder)


class FolderPaths:
    """Ordered search paths and extension sets per folder name."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.folders: dict[str, tuple[list[str], frozenset[str]]] = {}
        models = os.path.join(base, "models")
        for name, dirs, exts in _BUILT_IN:
            self.folders[name] = ([os.path.join(models, d) for d in dirs], exts)
        self.folders["custom_nodes"] = ([os.path.join(base, "custom_nodes")], frozenset())

    def add_path(self, folder: str, path: str, is_default: object = False) -> None:
        folder = map_legacy(folder)
        if folder not in self.folders:
            self.folders[folder] = ([path], frozenset())
            return
        paths = self.folders[folder][0]
        if path in paths:
            if is_default and paths[0] != path:
                paths.remove(path)
                paths.insert(0, path)
        elif is_default:
            paths.insert(0, path)
        else:
            paths.append(path)

    def paths(self, folder: str) -> list[str]:
        return list(self.folders[map_legacy(folder)][0])

    def full_path(self, folder: str, filename: str) -> str | None:
        folder = map_legacy(folder)
        if folder not in self.folders:
            return None
        # Anchor the name at "/" first so "../x" cannot leave the search directory.
        relative = os.path.relpath(os.path.join("/", filename), "/")
        for directory in self.folders[folder][0]:
            candidate = os.path.join(directory, relative)
            if os.path.isfile(candidate):
                return candidate
        return None

    def filename_list(self, folder: str) -> list[str]:
        directories, exts = self.folders[map_legacy(folder)]
        found: set[str] = set()
        for directory in directories:
            for name in _walk(directory):
                if not exts or os.path.splitext(name)[1].lower() in exts:
                    found.add(name)
        return sorted(found)

    def add_output_folders(self, output_dir: str) -> None:
        for folder in _OUTPUT_FOLDERS:
            self.add_path(folder, os.path.join(output_dir, folder))

    def load_yaml_file(self, yaml_path: str, say: Callable[[str], None] = print) -> None:
        """Apply one extra_model_paths YAML file; raise on what would crash ComfyUI."""
        try:
            import yaml
        except ImportError as exc:
            raise SystemExit(
                f"comfyui stand-in: cannot read {yaml_path}: PyYAML is not importable "
                f"(run the stand-in with a python that has PyYAML)"
            ) from exc
        with open(yaml_path, encoding="utf-8") as stream:
            config = yaml.safe_load(stream)
        for folder, path, is_default in extra_paths(config, yaml_path):
            say(f"Adding extra search path {folder} {path}")
            self.add_path(folder, path, is_default)


def extra_paths(config: object, yaml_path: str) -> Iterable[tuple[str, str, object]]:
    """(folder, path, is_default) triples of a parsed YAML document, in ComfyUI's order.

    Raises TypeError/AttributeError where ComfyUI would crash (no mapping, list values).
    """
    yaml_dir = os.path.dirname(os.path.abspath(yaml_path))
    for section_name in config:  # type: ignore[attr-defined]
        section = config[section_name]  # type: ignore[index]
        if section is None:
            continue
        section = dict(section)
        base_path = None
        if "base_path" in section:
            base_path = section.pop("base_path")
            base_path = os.path.expandvars(os.path.expanduser(base_path))
            if not os.path.isabs(base_path):
                base_path = os.path.abspath(os.path.join(yaml_dir, base_path))
        is_default = section.pop("is_default", False)
        for folder, value in section.items():
            for line in value.split("\n"):
                if not line:
                    continue
                if base_path:
                    full = os.path.join(base_path, line)
                elif os.path.isabs(line):
                    full = line
                else:
                    full = os.path.abspath(os.path.join(yaml_dir, line))
                yield folder, os.path.normpath(full), is_default


def _walk(directory: str) -> list[str]:
    """Files under ``directory`` relative to it; nothing when it is not a directory."""
    if not os.path.isdir(directory):
        return []
    names: list[str] = []
    for dirpath, subdirs, filenames in os.walk(directory, followlinks=True):
        subdirs[:] = [d for d in subdirs if d != ".git"]
        names.extend(os.path.relpath(os.path.join(dirpath, f), directory) for f in filenames)
    return names
