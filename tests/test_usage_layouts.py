"""``@auto`` in real volume layouts: a recorded model is looked up where ComfyUI looks (the
folders of the user's YAML too), a name that now leads off the volume costs only that
model, and a bad ``@``-line costs only itself while the rest is warmed."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import warmup_tree
from comfy_init.sidecar.tree_inotify import TreeEvent, TreeInotify
from comfy_init.usage import auto, journal
from comfy_init.usage.recorder import Recorder
from comfy_init.usage.records import Open
from comfy_init.warmup import engine, listing
from harness.polling import wait_for

KiB = 1024


class Tree(warmup_tree.Tree):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.usage = self.comfyui / ".comfy-init" / "usage"

    def used(self, rel: str, times: int, pod: str = "pod-a") -> None:
        type_, name = rel.split("/", 1)
        now = time.time()
        journal.append(
            journal.path_for(self.usage, pod),
            [Open(now - 60 - i, type_, name, 1, 1, "volume") for i in range(times)],
        )

    def user_yaml(self, text: str) -> None:
        (self.comfyui / "extra_model_paths.yaml").write_text(text)


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return Tree(tmp_path / "volume")


def warm(t: Tree) -> engine.Report:
    return engine.run(t.settings(), config=None, cancel=threading.Event())


def test_an_open_recorded_in_a_folder_of_the_users_yaml_is_warmed_by_the_next_auto(
    tree: Tree,
) -> None:
    store = tree.root / "store" / "loras"  # the user's YAML: loras live outside ComfyUI/models
    (store / "styles").mkdir(parents=True)
    model = store / "styles" / "ink.safetensors"
    model.write_bytes(b"a lora kept where the user's YAML points")
    tree.user_yaml(f"mine:\n  loras: {store}\n")
    # The sidecar's path: inotify sees ComfyUI open it, the recorder writes the journal.
    recorder = Recorder(journal.path_for(tree.usage, "pod-a"), 14)
    events: list[TreeEvent] = []
    trees = TreeInotify({"cache": tree.cache}, events.append, [("volume", "loras", store)])
    trees.start()
    try:
        assert trees.ready.wait(10)
        with model.open("rb"):
            pass
        wait_for(lambda: any(e.kind == "open" for e in events), 10, "the open to be seen")
    finally:
        trees.stop()
    (opened,) = [e for e in events if e.kind == "open"]
    recorder.record(opened.type, opened.name, opened.path, opened.location)
    recorder.flush()
    tree.config("@auto\n")

    report = warm(tree)

    assert [(r.type, r.name, r.source, r.status, r.auto) for r in report.files] == [
        ("loras", "styles/ink.safetensors", str(model), "copied", True)
    ]
    assert (tree.cache / "loras" / "styles" / "ink.safetensors").read_bytes() == model.read_bytes()
    assert report.auto is not None
    assert report.auto["dropped"] == {auto.LISTED: 0, auto.GONE: 0, auto.OUTSIDE: 0}
    assert report.skipped == []


def test_auto_takes_the_file_comfyui_would_load_first_in_the_search_list(tree: Tree) -> None:
    first = tree.root / "first" / "vae"
    first.mkdir(parents=True)
    (first / "v.safetensors").write_bytes(b"the is_default folder comes first")
    tree.model("vae/v.safetensors", 10 * KiB)  # models/vae, searched after it
    tree.model("diffusion_models/flux.safetensors", 20 * KiB)
    tree.user_yaml(f"first:\n  is_default: true\n  vae: {first}\n")
    tree.used("vae/v.safetensors", 3)
    tree.used("unet/flux.safetensors", 2)  # the legacy name searches diffusion_models too
    tree.config("@auto\n")

    report = warm(tree)

    assert [(r.type, r.name, r.source) for r in report.files] == [
        ("vae", "v.safetensors", str(first / "v.safetensors")),
        ("unet", "flux.safetensors", str(tree.models / "diffusion_models" / "flux.safetensors")),
    ]
    data = listing.listing(tree.settings(), None)
    found = {f["name"]: f["found_in"] for e in data["entries"] for f in e["files"]}
    assert found == {
        "v.safetensors": str(first),
        "flux.safetensors": str(tree.models / "diffusion_models"),
    }


def test_a_recorded_model_that_now_links_off_the_volume_is_dropped_alone_unread(
    tree: Tree, tmp_path_factory: pytest.TempPathFactory
) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")  # off the volume, named nowhere
    (elsewhere / "secret.safetensors").write_bytes(b"never read")
    shared = tree.root / "shared"  # on the volume: a link there is followed
    shared.mkdir()
    (shared / "kept.safetensors").write_bytes(b"on the volume through a link")
    (tree.models / "loras").mkdir()
    (tree.models / "loras" / "out.safetensors").symlink_to(elsewhere / "secret.safetensors")
    (tree.models / "loras" / "kept.safetensors").symlink_to(shared / "kept.safetensors")
    loop = tree.models / "loras" / "loop.safetensors"
    loop.symlink_to(loop)
    tree.used("loras/out.safetensors", 9)
    tree.used("loras/loop.safetensors", 8)
    tree.used("loras/../../../etc/passwd", 7)
    tree.used("loras/kept.safetensors", 1)
    tree.used("loras/deleted.safetensors", 1)
    tree.config("@auto\n")

    report = warm(tree)

    assert [(r.name, r.status, r.auto) for r in report.files] == [
        ("kept.safetensors", "copied", True)
    ]
    assert (
        tree.cache / "loras" / "kept.safetensors"
    ).read_bytes() == b"on the volume through a link"
    assert not (tree.cache / "loras" / "out.safetensors").exists()
    assert report.auto is not None
    # the link out, the loop and the '..' name: each dropped alone; the gone one left out
    assert report.auto["dropped"] == {auto.LISTED: 0, auto.GONE: 1, auto.OUTSIDE: 3}
    assert report.skipped == []  # a recorded name is not a config line


def test_a_second_auto_and_an_unknown_at_line_are_skipped_alone_like_a_link_out(
    tree: Tree,
) -> None:
    tree.model("checkpoints/used.safetensors", 30 * KiB)
    tree.model("vae/listed.safetensors", 10 * KiB)
    (tree.models / "vae" / "away.safetensors").symlink_to("/etc/hostname")  # off the volume
    tree.used("checkpoints/used.safetensors", 4)
    conf = tree.config(
        "@auto\nvae/listed.safetensors\n@auto\n@Auto\n@auto loras\nvae/away.safetensors\n"
    )

    report = warm(tree)

    assert [(f"{r.type}/{r.name}", r.status, r.auto) for r in report.files] == [
        ("checkpoints/used.safetensors", "copied", True),
        ("vae/listed.safetensors", "copied", False),
    ]
    assert [(s.line, s.entry, s.reason) for s in report.skipped] == [
        (f"{conf}:3", "@auto", "invalid"),
        (f"{conf}:4", "@Auto", "invalid"),
        (f"{conf}:5", "@auto loras", "invalid"),
        (f"{conf}:6", "vae/away.safetensors", "link_outside"),
    ]
    assert report.skipped[0].error == (
        f"{conf}:3: warmup config line '@auto' appears again, first at {conf}:1 (keep one)"
    )
    assert "is not a line comfy-init knows" in report.skipped[1].error
    assert report.auto is not None
    assert report.auto["line"] == f"{conf}:1"


def test_warmup_with_a_bad_at_line_warms_the_rest_then_exits_3_naming_it(tree: Tree) -> None:
    tree.model("checkpoints/used.safetensors", 30 * KiB)
    tree.used("checkpoints/used.safetensors", 4)
    conf = tree.config("@auto\n@auto\n")
    env = {**tree.env, "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "comfy_init", "warmup"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 3, done.stderr
    assert f"{conf}:2: warmup config line '@auto' appears again, first at {conf}:1" in done.stderr
    assert (tree.cache / "checkpoints" / "used.safetensors").is_file()
    listed = subprocess.run(
        [sys.executable, "-m", "comfy_init", "warmup", "--list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert f"skipped: {conf}:2: warmup config line '@auto' appears again" in listed
    assert "checkpoints/used.safetensors" in listed
