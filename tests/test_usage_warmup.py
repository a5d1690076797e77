"""``@auto`` in a warmup config: its line, its place among the others, its budget, the report,
``--list``, ``--suggest`` and ComfyUI's paths file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

import warmup_tree
from comfy_init.comfyui import model_paths
from comfy_init.errors import ConfigError
from comfy_init.manifest.expand import SearchPath, expand
from comfy_init.manifest.lines import Entry, parse
from comfy_init.usage import auto, journal
from comfy_init.usage.records import Open
from comfy_init.warmup import engine, listing

KiB = 1024


def test_auto_is_one_line_of_its_own_kept_in_place_and_matched_by_nothing() -> None:
    entries = parse("loras/a.safetensors\n  @auto   # what the fleet used\nvae/*\n", "w.conf")
    assert entries == [
        Entry("loras", "a.safetensors", "w.conf:1"),
        Entry("", "", "w.conf:2", auto=True),
        Entry("vae", "*", "w.conf:3"),
    ]
    assert [e.text for e in entries] == ["loras/a.safetensors", "@auto", "vae/*"]
    assert expand(entries, SearchPath(Path("/nonexistent"))).unmatched == [entries[0], entries[2]]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "@auto\n\n@auto\n",
            "w.conf:3: warmup config line '@auto' appears again, first at w.conf:1",
        ),
        ("@Auto\n", "w.conf:1: warmup config line '@Auto' is not a line comfy-init knows"),
        ("@auto loras\n", "w.conf:1: warmup config line '@auto loras' is not a line"),
        ("@auto/x.safetensors\n", "w.conf:1: warmup config line '@auto/x.safetensors' is not"),
    ],
)
def test_a_wrong_auto_line_is_an_error_naming_file_and_line(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(text, "w.conf")
    assert problem in str(err.value)


class Tree(warmup_tree.Tree):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.usage = self.comfyui / ".comfy-init" / "usage"

    def used(self, pod: str, rel: str, times: int, age: float = 60.0) -> None:
        type_, name = rel.split("/", 1)
        now = time.time()
        journal.append(
            journal.path_for(self.usage, pod),
            [Open(now - age - i, type_, name, 1, 1, "volume") for i in range(times)],
        )


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    t = Tree(tmp_path)
    t.model("checkpoints/most.safetensors", 300 * KiB)
    t.model("loras/second.safetensors", 200 * KiB)
    t.model("loras/third.safetensors", 100 * KiB)
    t.model("vae/explicit.safetensors", 50 * KiB)
    t.used("pod-a", "checkpoints/most.safetensors", 5)
    t.used("pod-b", "loras/second.safetensors", 3)
    t.used("pod-a", "loras/third.safetensors", 2)
    t.used("pod-b", "vae/explicit.safetensors", 9)  # listed by the config: not @auto's
    return t


def warm(t: Tree, **env: str) -> engine.Report:
    return engine.run(t.settings(**env), config=None, cancel=threading.Event())


def test_auto_files_come_where_the_line_stands_most_used_first_and_are_marked(tree: Tree) -> None:
    tree.config("vae/explicit.safetensors\n@auto\nloras/third.safetensors\n")
    with capture_logs() as logged:
        report = warm(tree)
    (said,) = [e for e in logged if e["event"] == "auto_expanded"]
    assert (said["files"], said["bytes"], said["models"], said["dropped"]) == (2, 500 * KiB, 4, 2)
    assert [(f"{r.type}/{r.name}", r.status, r.auto) for r in report.files] == [
        ("vae/explicit.safetensors", "copied", False),
        ("checkpoints/most.safetensors", "copied", True),
        ("loras/second.safetensors", "copied", True),
        ("loras/third.safetensors", "copied", False),  # listed after @auto: stays after it
    ]
    assert report.auto is not None
    assert {k: report.auto[k] for k in ("models", "candidates", "files", "bytes")} == {
        "models": 4, "candidates": 2, "files": 2, "bytes": 500 * KiB,
    }  # fmt: skip
    assert report.auto["dropped"] == {auto.LISTED: 2, auto.GONE: 0, auto.OUTSIDE: 0}
    assert (tree.cache / "checkpoints" / "most.safetensors").is_file()


def test_warmup_auto_max_mb_caps_the_total_most_used_first(tmp_path: Path) -> None:
    t = Tree(tmp_path)
    t.model("checkpoints/most.safetensors", 2 * 1024 * KiB)
    t.model("loras/second.safetensors", 1536 * KiB)
    t.model("loras/third.safetensors", 512 * KiB)
    t.used("p", "checkpoints/most.safetensors", 5)
    t.used("p", "loras/second.safetensors", 3)
    t.used("p", "loras/third.safetensors", 2)
    t.config("@auto\n")
    # 3 MiB: the checkpoint (2) fits, the second (1.5) does not, the third (0.5) still does
    report = warm(t, WARMUP_AUTO_MAX_MB="3")
    assert [(r.name, r.status) for r in report.files] == [
        ("most.safetensors", "copied"),
        ("third.safetensors", "copied"),
    ]
    assert report.auto is not None
    assert report.auto["left_out"] == 1
    assert not (t.cache / "loras" / "second.safetensors").exists()


def test_free_space_less_the_reserve_and_the_earlier_lines_bounds_auto(
    tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auto, "free_bytes", lambda _path: 1024 * KiB + 600 * KiB)
    entries = parse("vae/explicit.safetensors\n@auto\n", "c")
    s = tree.settings(CACHE_RESERVE_MB="1")
    # 600 KiB over the reserve, 50 of them for the line before: the checkpoint (300) and the
    # second LoRA (200) fit, the checkpoint the most used first
    got = auto.expand_config(entries, s, now=time.time())
    assert [f.name for f in got.files] == [
        "explicit.safetensors",
        "most.safetensors",
        "second.safetensors",
    ]
    assert got.auto is not None
    assert [c.usage.name for c in got.auto.selection.left_out] == ["third.safetensors"]
    # an up-to-date cached copy takes no space: with the checkpoint cached, all fit
    tree.config("@auto\n")
    warm(tree)  # caches everything the journals name
    got = auto.expand_config(entries, s, now=time.time())
    assert got.auto is not None
    assert not got.auto.selection.left_out


def test_without_usage_auto_warms_nothing_and_the_rest_still_does(tmp_path: Path) -> None:
    t = Tree(tmp_path)
    t.model("vae/v.safetensors", 10 * KiB)
    t.config("@auto\nvae/v.safetensors\n")
    report = warm(t)
    assert [(r.name, r.auto) for r in report.files] == [("v.safetensors", False)]
    assert report.auto is not None
    assert report.auto["models"] == 0


def test_the_warmup_prunes_silent_pods_journals(tree: Tree) -> None:
    old = journal.path_for(tree.usage, "gone-pod")
    tree.used("gone-pod", "loras/third.safetensors", 100, age=20 * 86400)
    t = time.time() - 20 * 86400
    os.utime(old, (t, t))
    tree.config("@auto\n")
    warm(tree)
    assert not old.exists()
    assert journal.path_for(tree.usage, "pod-a").exists()


def test_model_paths_name_the_types_auto_may_warm_where_the_line_stands(tree: Tree) -> None:
    s = tree.settings()
    entries = parse("unet/x.safetensors\n@auto\nvae/*\n", "c")
    types = auto.model_types(entries, s, time.time())
    assert types == ["vae", "checkpoints", "loras"]
    assert model_paths.configured_types(entries, types) == ["unet", "vae", "checkpoints", "loras"]


def test_list_shows_what_auto_stands_for(tree: Tree) -> None:
    tree.config("@auto\n")
    data = listing.listing(tree.settings(), None)
    (line,) = data["entries"]
    assert line["entry"] == "@auto"
    assert [(f["name"], f["auto"], f["cache"]) for f in line["files"]] == [
        ("explicit.safetensors", True, "absent"),
        ("most.safetensors", True, "absent"),
        ("second.safetensors", True, "absent"),
        ("third.safetensors", True, "absent"),
    ]
    text = listing.listing_text(data)
    assert "@auto  (4 models recorded, 4 chosen, 0 over the budget)" in text
    status = listing.status(tree.settings(), None)
    assert [f["auto"] for f in status["files"]] == [True] * 4
    assert "checkpoints/most.safetensors (@auto)" in listing.status_text(status)


def test_suggest_prints_a_config_most_used_first_from_the_command_line(tree: Tree) -> None:
    env = {**tree.env, "PATH": "/usr/bin:/bin", "WARMUP_AUTO_MAX_MB": "1"}
    cmd = [sys.executable, "-m", "comfy_init", "warmup", "--suggest"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    config = [ln.split()[0] for ln in done.stdout.splitlines() if not ln.startswith("#")]
    assert config == [
        "vae/explicit.safetensors",
        "checkpoints/most.safetensors",
        "loras/second.safetensors",
        "loras/third.safetensors",
    ]
    assert "# 9 opens, last used" in done.stdout
    # the text is a config comfy-init reads
    assert [e.text for e in parse(done.stdout, "suggested")] == config
    data = json.loads(
        subprocess.run(
            [*cmd, "--json"], env=env, capture_output=True, text=True, timeout=60, check=True
        ).stdout
    )
    assert [(m["entry"], m["opens"], m["pods"]) for m in data["models"]] == [
        ("vae/explicit.safetensors", 9, 1),
        ("checkpoints/most.safetensors", 5, 1),
        ("loras/second.safetensors", 3, 1),
        ("loras/third.safetensors", 2, 1),
    ]
    assert data["max_bytes"] == 1024 * KiB


def test_journals_that_cannot_be_read_cost_auto_its_models_not_the_warmup(tmp_path: Path) -> None:
    t = Tree(tmp_path)
    t.model("vae/v.safetensors", 10 * KiB)
    t.usage.parent.mkdir(parents=True)
    t.usage.write_text("not a folder\n")
    t.config("@auto\nvae/v.safetensors\n")
    report = warm(t)
    assert [(r.name, r.status) for r in report.files] == [("v.safetensors", "copied")]
    assert report.auto is not None
    assert report.auto["models"] == 0
