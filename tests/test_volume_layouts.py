"""Real volume layouts, in-process: config lines resolve in ComfyUI's own search list (checked
against the stand-in's folder_paths, which follows ComfyUI's rules), the user's YAML may be
bad, symlinks on the volume are followed and links out are skipped alone, downloads go back
to the type's home and opens in the user's folders count as the volume's."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from inotify_simple import INotify
from inotify_simple import flags as iflags

import warmup_tree
from comfy_init.comfyui.user_model_paths import ExtraFolder
from comfy_init.manifest.expand import expand
from comfy_init.manifest.lines import parse
from comfy_init.manifest.search_path import SearchPath
from comfy_init.sidecar.download_return import DownloadReturn
from comfy_init.sidecar.tree_inotify import TreeEvent, TreeInotify
from comfy_init.warmup import engine, listing
from comfyui_standin.folder_paths import FolderPaths
from harness.polling import wait_for

KiB = 1024
TYPES = (
    "checkpoints",
    "loras",
    "vae",
    "unet",
    "diffusion_models",
    "clip",
    "text_encoders",
    "controlnet",
)


@pytest.fixture
def tree(tmp_path: Path) -> warmup_tree.Tree:
    return warmup_tree.Tree(tmp_path)


def user_yaml(tree: warmup_tree.Tree, text: str) -> Path:
    path = tree.comfyui / "extra_model_paths.yaml"
    path.write_text(text)
    return path


def comfyui_paths(tree: warmup_tree.Tree) -> FolderPaths:
    """The stand-in's search lists after loading the user's YAML, as ComfyUI builds them."""
    paths = FolderPaths(str(tree.comfyui))
    paths.load_yaml_file(str(tree.comfyui / "extra_model_paths.yaml"), say=lambda _line: None)
    return paths


def without_cache(paths: list[str], cache: Path) -> list[Path]:
    return [Path(p) for p in paths if not Path(p).is_relative_to(cache)]


LAYOUT = """\
shared:                       # relative base_path: relative to this file's folder
  base_path: ../store
  checkpoints: checkpoints
  loras: |
    loras
    loras_more
  unet: diffusion             # legacy keys
  clip: text
  controlnet: control
first:
  is_default: "false"         # a string: truthy, as in ComfyUI
  vae: /volume/vae_first
  checkpoints: |
    ck_a
    ck_b
comfy_init_cache:             # our own section, should a copy of our file land here
  is_default: true
  checkpoints: {cache}/checkpoints
mine:
  loras: {cache}/loras
plugin:
  ipadapter: /volume/ipadapter
"""


def test_search_folders_are_comfyuis_list_for_every_type_without_the_cache(
    tree: warmup_tree.Tree,
) -> None:
    user_yaml(tree, LAYOUT.format(cache=tree.cache))
    search = SearchPath.of(tree.settings())
    comfyui = comfyui_paths(tree)
    assert search.problems == ()
    for type_ in TYPES:
        assert search.folders(type_) == without_cache(comfyui.paths(type_), tree.cache), type_
    store, models = tree.root / "store", tree.models
    # Spelled out once: is_default lines reversed and first, then models/, then the rest.
    assert search.folders("checkpoints") == [
        tree.comfyui / "ck_b",
        tree.comfyui / "ck_a",
        models / "checkpoints",
        store / "checkpoints",
    ]
    assert search.folders("clip") == [models / "text_encoders", models / "clip", store / "text"]
    # A type ComfyUI does not know starts at models/<type>, where custom nodes register it.
    assert search.folders("ipadapter") == [
        models / "ipadapter",
        *without_cache(comfyui.paths("ipadapter"), tree.cache),
    ]


def test_each_line_resolves_to_the_file_comfyui_would_load(tree: warmup_tree.Tree) -> None:
    user_yaml(tree, LAYOUT.format(cache=tree.cache))
    store = tree.root / "store"
    for folder in (
        tree.comfyui / "ck_b",
        tree.models / "checkpoints",
        store / "checkpoints",
        store / "loras_more",
        store / "diffusion",
        tree.models / "diffusion_models",
        store / "text",
    ):
        for name in ("everywhere.safetensors", f"only_{folder.name}.safetensors"):
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(str(path).encode())
    lines = [
        "checkpoints/everywhere.safetensors",
        "checkpoints/only_checkpoints.safetensors",
        "loras/only_loras_more.safetensors",
        "unet/everywhere.safetensors",
        "diffusion_models/only_diffusion.safetensors",
        "clip/only_text.safetensors",
        "text_encoders/everywhere.safetensors",
    ]
    found = expand(parse("\n".join(lines), "w.conf"), SearchPath.of(tree.settings())).files
    comfyui = comfyui_paths(tree)
    assert [f"{f.type}/{f.name}" for f in found] == lines
    for f in found:
        assert str(f.source) == comfyui.full_path(f.type, f.name), f.entry.text
    assert found[0].source == tree.comfyui / "ck_b" / "everywhere.safetensors"
    assert found[0].folder == tree.comfyui / "ck_b"


@pytest.mark.parametrize(
    ("text", "line", "why"),
    [
        ("shared: [unclosed\n", 2, "not valid YAML"),
        ("", 1, "holds no section"),
        ("- a\n- b\n", 1, "the document is not a mapping"),
        ("bad: just/a/path\nshared:\n  loras: {store}\n", 1, "section 'bad' is a str"),
        ("shared:\n  checkpoints:\n    - /a\n    - /b\n  loras: {store}\n", 3, "is a list"),
        ("shared:\n  base_path: [x]\n  vae: v\nother:\n  loras: {store}\n", 2, "base_path"),
    ],
)
def test_a_bad_user_yaml_is_reported_with_its_line_and_the_rest_still_warms(
    tree: warmup_tree.Tree, text: str, line: int, why: str
) -> None:
    store = tree.root / "store"
    (store / "y.safetensors").parent.mkdir(parents=True)
    (store / "y.safetensors").write_bytes(b"in the user's folder")
    yaml_path = user_yaml(tree, text.format(store=store))
    with pytest.raises(Exception):  # noqa: B017, PT011 - whatever ComfyUI would crash with
        comfyui_paths(tree)
    (tree.models / "checkpoints").mkdir()
    (tree.models / "checkpoints" / "x.safetensors").write_bytes(b"under models/")
    tree.config("checkpoints/x.safetensors\nloras/y.safetensors\n")
    report = engine.run(tree.settings(), config=None, cancel=threading.Event())
    (problem,) = report.user_yaml_problems
    assert problem.startswith(f"{yaml_path}:{line}: ")
    assert why in problem
    assert (tree.cache / "checkpoints" / "x.safetensors").read_bytes() == b"under models/"
    statuses = {r.name: r.status for r in report.files}
    # Where the good part of the file names the store, its file warms too.
    expected = "copied" if "{store}" in text else "missing"
    assert statuses == {"x.safetensors": "copied", "y.safetensors": expected}


def test_symlinks_on_the_volume_are_warmed_as_files_and_a_link_out_is_skipped_alone_unread(
    tree: warmup_tree.Tree, tmp_path_factory: pytest.TempPathFactory
) -> None:
    shared = tree.root / "shared"  # on the volume (the parent of COMFYUI_PATH), outside models
    (shared / "pack").mkdir(parents=True)
    (shared / "x.safetensors").write_bytes(b"one copy for every install")
    (shared / "pack" / "l.safetensors").write_bytes(b"a lora in a shared folder")
    store = tmp_path_factory.mktemp("store")  # off the volume, but a folder of the user's YAML
    (store / "s.safetensors").write_bytes(b"kept where the user's YAML points")
    elsewhere = tmp_path_factory.mktemp("elsewhere")  # off the volume, named nowhere
    (elsewhere / "secret.safetensors").write_bytes(b"never read")
    user_yaml(tree, f"store:\n  vae: {store}\n")
    for type_ in ("checkpoints", "loras", "vae"):
        (tree.models / type_).mkdir()
    (tree.models / "checkpoints" / "x.safetensors").symlink_to(shared / "x.safetensors")
    (tree.models / "loras" / "pack").symlink_to(shared / "pack")
    (tree.models / "checkpoints" / "s.safetensors").symlink_to(store / "s.safetensors")
    (tree.models / "vae" / "out.safetensors").symlink_to(elsewhere / "secret.safetensors")
    (tree.models / "vae" / "loop.safetensors").symlink_to(tree.models / "vae" / "loop.safetensors")
    conf = tree.config(
        "checkpoints/x.safetensors\nvae/out.safetensors\nloras/pack/*\nvae/loop.safetensors\n"
        "checkpoints/s.safetensors\n"
    )
    with INotify() as watch:
        watch.add_watch(elsewhere, iflags.OPEN | iflags.ACCESS)
        report = engine.run(tree.settings(), config=None, cancel=threading.Event())
        opened_outside = watch.read(timeout=0)
    assert [(r.type, r.name, r.status) for r in report.files] == [
        ("checkpoints", "x.safetensors", "copied"),
        ("loras", "pack/l.safetensors", "copied"),
        ("checkpoints", "s.safetensors", "copied"),
    ]
    for rel, data in (
        ("checkpoints/x.safetensors", b"one copy for every install"),
        ("loras/pack/l.safetensors", b"a lora in a shared folder"),
        ("checkpoints/s.safetensors", b"kept where the user's YAML points"),
    ):
        copy = tree.cache / rel
        assert not copy.is_symlink()
        assert copy.read_bytes() == data
    assert [(s.line, s.reason) for s in report.skipped] == [
        (f"{conf}:2", "link_outside"),
        (f"{conf}:4", "link_loop"),
    ]
    assert str(elsewhere / "secret.safetensors") in report.skipped[0].error
    assert str(tree.models / "vae" / "out.safetensors") in report.skipped[0].error
    assert opened_outside == []  # the file behind the link out was never opened
    assert not (tree.cache / "vae" / "out.safetensors").exists()


def test_a_link_out_is_refused_when_comfyui_sits_at_the_filesystem_root() -> None:
    search = SearchPath(Path("/ComfyUI/models"), volume_root=None)
    assert search.fence == (Path("/ComfyUI/models"),)
    extra = ExtraFolder("loras", Path("/workspace/models/loras"), False, "y:2")
    search = SearchPath(Path("/ComfyUI/models"), extra=(extra,))
    assert search.fence == (Path("/ComfyUI/models"), Path("/workspace/models/loras"))


# -- the sidecar: downloads go home, opens in the user's folders are the volume's ----------
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def returned(cache: Path, search: SearchPath, rel: str, data: bytes) -> DownloadReturn:
    (cache / rel).parent.mkdir(parents=True, exist_ok=True)
    (cache / rel).write_bytes(data)
    clock = Clock()
    returns = DownloadReturn(cache, search, lambda: None, settle_seconds=1.0, clock=clock)
    returns.scan()
    for _ in range(3):
        clock.now += 1.0
        returns.run_due(threading.Event())
    return returns


def test_a_download_goes_back_to_the_users_folder_when_comfyui_would_save_it_there(
    tmp_path: Path,
) -> None:
    models, store, cache = tmp_path / "ComfyUI" / "models", tmp_path / "store", tmp_path / "c"
    (models / "loras").mkdir(parents=True)
    (store / "loras").mkdir(parents=True)
    first = ExtraFolder("loras", store / "loras", True, "y:3")  # is_default: before models/
    returns = returned(cache, SearchPath(models, extra=(first,)), "loras/new.safetensors", b"n")
    assert (store / "loras" / "new.safetensors").read_bytes() == b"n"
    assert not (models / "loras" / "new.safetensors").exists()
    assert returns.stats.files == {"loras": 1}
    # Without models/unet, the user's folder is the only home that exists.
    (store / "diffusion").mkdir()
    later = ExtraFolder("diffusion_models", store / "diffusion", False, "y:4")
    returned(cache, SearchPath(models, extra=(later,)), "unet/flux.safetensors", b"f")
    assert (store / "diffusion" / "flux.safetensors").read_bytes() == b"f"


def test_a_download_already_in_any_searched_folder_is_not_copied_again(tmp_path: Path) -> None:
    models, store, cache = tmp_path / "ComfyUI" / "models", tmp_path / "store", tmp_path / "c"
    (models / "loras").mkdir(parents=True)
    (store / "loras").mkdir(parents=True)
    (store / "loras" / "known.safetensors").write_bytes(b"the user's copy")
    later = ExtraFolder("loras", store / "loras", False, "y:3")
    returns = returned(cache, SearchPath(models, extra=(later,)), "loras/known.safetensors", b"k")
    assert returns.stats.files == {}
    assert not (models / "loras" / "known.safetensors").exists()
    assert (store / "loras" / "known.safetensors").read_bytes() == b"the user's copy"


def test_an_open_in_a_folder_of_the_users_yaml_is_a_volume_open_of_that_type(
    tmp_path: Path,
) -> None:
    store = tmp_path / "store" / "loras"
    (store / "sub").mkdir(parents=True)
    model = store / "sub" / "x.safetensors"
    model.write_bytes(b"x")
    events: list[TreeEvent] = []
    trees = TreeInotify({"cache": tmp_path / "cache"}, events.append, [("volume", "loras", store)])
    trees.start()
    try:
        assert trees.ready.wait(10)
        assert trees.watch_counts() == {"cache": 0, "volume": 2}
        with model.open("rb"):
            pass
        wait_for(lambda: any(e.kind == "open" for e in events), 10, "the open to be seen")
    finally:
        trees.stop()
    (opened,) = [e for e in events if e.kind == "open"]
    assert (opened.location, opened.type, opened.name) == ("volume", "loras", "sub/x.safetensors")
    assert os.fspath(opened.path) == os.fspath(model)


def test_list_shows_where_each_file_was_found_and_every_skipped_line(
    tree: warmup_tree.Tree,
) -> None:
    store = tree.root / "store"
    user_yaml(tree, f"mine:\n  loras: {store}/loras\n  vae: [a, b]\n")
    (store / "loras").mkdir(parents=True)
    (store / "loras" / "l.safetensors").write_bytes(b"l")
    (tree.models / "checkpoints").mkdir()
    (tree.models / "checkpoints" / "c.safetensors").write_bytes(b"c")
    conf = tree.config("checkpoints/c.safetensors\nloras/../x\nloras/l.safetensors\n")
    data = listing.listing(tree.settings(), None)
    found = {f["name"]: f["found_in"] for e in data["entries"] for f in e["files"]}
    assert found == {
        "c.safetensors": str(tree.models / "checkpoints"),
        "l.safetensors": str(store / "loras"),
    }
    assert [(s["line"], s["reason"]) for s in data["skipped"]] == [(f"{conf}:2", "invalid")]
    (problem,) = data["user_yaml_problems"]
    assert problem.startswith(f"{tree.comfyui / 'extra_model_paths.yaml'}:3: mine.vae is a list")
    text = listing.listing_text(data).splitlines()
    assert any(row.endswith(str(store / "loras")) and "loras/l.safetensors" in row for row in text)
    assert f"skipped: {conf}:2: warmup config line 'loras/../x'" in "\n".join(text)
    assert any(row.startswith("not used: ") and "mine.vae" in row for row in text)


def test_an_absolute_line_inside_a_model_folder_is_read_as_its_type_and_name(
    tree: warmup_tree.Tree,
) -> None:
    store = tree.root / "store"
    user_yaml(tree, f"mine:\n  unet: {store}/diffusion\n")
    for path in (tree.models / "loras" / "a.safetensors", store / "diffusion" / "f.safetensors"):
        path.parent.mkdir(parents=True)
        path.write_bytes(path.name.encode())
    conf = tree.config(
        f"{tree.models}/loras/*.safetensors\n{store}/diffusion/f.safetensors\n/etc/passwd\n"
        f"{tree.models}/../../etc/passwd\n"
    )
    report = engine.run(tree.settings(), config=None, cancel=threading.Event())
    assert [(r.type, r.name, r.status, r.line) for r in report.files] == [
        ("loras", "a.safetensors", "copied", f"{conf}:1"),
        ("unet", "f.safetensors", "copied", f"{conf}:2"),
    ]
    assert (tree.cache / "unet" / "f.safetensors").read_bytes() == b"f.safetensors"
    outside, dots = report.skipped
    assert outside.line == f"{conf}:3"
    assert "'/etc/passwd' is an absolute path outside the model folders" in outside.error
    assert str(store / "diffusion") in outside.error
    assert dots.line == f"{conf}:4"
    assert "has a '..' component" in dots.error
