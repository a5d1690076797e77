"""Where a config line's ``<type>/<name>`` is looked up: ComfyUI's own search list for the type.

ComfyUI (``folder_paths.py``) starts each folder name with its built-in ``models/`` folders,
then applies every path of ``$COMFYUI_PATH/extra_model_paths.yaml`` in file order: appended,
or with ``is_default`` put first (an existing entry moves to the front).  Legacy names map
on every call: ``unet`` is ``diffusion_models``, ``clip`` is ``text_encoders``, and those
two search both of their folders.  ``folders(type)`` is that list, without our cache (which
ComfyUI searches before all of it): the first folder holding a name is the one ComfyUI
would load from.  A type ComfyUI does not know (a custom node's) starts with
``models/<type>``, where such nodes register it.

Every file read must really be inside the ``fence``: the volume (the parent of
``$COMFYUI_PATH``), the models folder (``models`` may itself be a link elsewhere, as
ai-dock lays it out) and each folder of the user's YAML.  A volume root of ``/`` (ComfyUI
installed at ``/ComfyUI``) would fence nothing: then only the model folders count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from comfy_init.comfyui import user_model_paths
from comfy_init.comfyui.user_model_paths import ExtraFolder
from comfy_init.settings import Settings

LEGACY_NAMES = {"unet": "diffusion_models", "clip": "text_encoders"}
# ComfyUI's folder names whose built-in list holds more than models/<name>, in its order.
BUILT_IN_DIRS = {
    "text_encoders": ("text_encoders", "clip"),
    "diffusion_models": ("unet", "diffusion_models"),
    "controlnet": ("controlnet", "t2i_adapter"),
}


def comfyui_folder(type_: str) -> str:
    """The folder name ComfyUI files ``type_`` under."""
    return LEGACY_NAMES.get(type_, type_)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)


@dataclass(frozen=True)
class SearchPath:
    """ComfyUI's model search list per type, minus our cache, and the fence around it."""

    models_path: Path
    extra: tuple[ExtraFolder, ...] = ()  # the user's YAML, in file order, our cache left out
    volume_root: Path | None = None  # None: no volume root (only the model folders fence)
    problems: tuple[str, ...] = ()  # what was wrong with the user's YAML (its folders: left out)

    @classmethod
    def of(cls, settings: Settings) -> SearchPath:
        user = user_model_paths.load(settings.user_model_paths_path)
        cache = settings.cache_path.absolute()
        root = settings.comfyui_path.absolute().parent
        return cls(
            models_path=settings.models_path,
            extra=tuple(f for f in user.folders if not _inside(f.path, cache)),
            volume_root=None if root == Path(root.anchor) else root,
            problems=user.problems,
        )

    def folders(self, type_: str) -> list[Path]:
        """The folders searched for ``type_``, first match first (ComfyUI's order)."""
        folder = comfyui_folder(type_)
        models = self.models_path.absolute()
        paths = [models / d for d in BUILT_IN_DIRS.get(folder, (type_,))]
        for extra in self.extra:
            if comfyui_folder(extra.key) != folder:
                continue
            if extra.path in paths:
                if extra.is_default and paths[0] != extra.path:
                    paths.remove(extra.path)
                    paths.insert(0, extra.path)
            elif extra.is_default:
                paths.insert(0, extra.path)
            else:
                paths.append(extra.path)
        return paths

    def home(self, type_: str) -> Path:
        """Where a new model of ``type_`` belongs: the first folder of the search list that
        exists (ComfyUI's downloaders save to the first folder), else the first."""
        paths = self.folders(type_)
        return next((p for p in paths if p.is_dir()), paths[0])

    @property
    def fence(self) -> tuple[Path, ...]:
        """The folders every match and every listed folder must really be inside."""
        roots: Sequence[Path] = [
            *([self.volume_root] if self.volume_root is not None else []),
            self.models_path.absolute(),
            *(f.path for f in self.extra),
        ]
        return tuple(dict.fromkeys(roots))

    def anchors(self) -> list[tuple[str, str | None]]:
        """Where an absolute config line may point (``lines.read``): the models folder (its
        first level is the type) and each folder of the user's YAML (of its key's type)."""
        return [
            (str(self.models_path.absolute()), None),
            *((str(f.path), f.key) for f in self.extra),
        ]

    def user_folders(self) -> list[tuple[str, Path]]:
        """``(type as written, folder)`` of every folder of the user's YAML, each once."""
        return list(dict.fromkeys((f.key, f.path) for f in self.extra))
