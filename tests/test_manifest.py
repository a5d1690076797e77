"""The warmup config: parsing every line, locating the file, expanding inside the models tree."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from comfy_init.errors import EXIT_CONFIG, ConfigError
from comfy_init.manifest import expand as expand_module
from comfy_init.manifest.expand import SearchPath, expand, resolve
from comfy_init.manifest.lines import Entry, load, locate, parse, read
from comfy_init.settings import from_env


def touch(path: Path, data: bytes = b"model") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def names(models: Path, text: str) -> list[str]:
    """``type/name`` of each expanded file, in priority order."""
    return [f"{f.type}/{f.name}" for f in expand(parse(text, "w.conf"), SearchPath(models)).files]


@pytest.fixture
def models(tmp_path: Path) -> Path:
    root = tmp_path / "ComfyUI" / "models"
    root.mkdir(parents=True)
    return root


# --- parse ---------------------------------------------------------------------------------


def test_parse_ignores_comments_blank_lines_and_surrounding_whitespace() -> None:
    text = (
        "# models for the SDXL workflow\n"
        "\n"
        "   checkpoints/sd_xl_base_1.0.safetensors   \n"
        "loras/detail.safetensors # trailing comment\n"
        "\t# indented comment\n"
        "vae/sdxl_vae.safetensors\t# after a tab\n"
    )
    assert parse(text, "/cfg/warmup_models.conf") == [
        Entry("checkpoints", "sd_xl_base_1.0.safetensors", "/cfg/warmup_models.conf:3"),
        Entry("loras", "detail.safetensors", "/cfg/warmup_models.conf:4"),
        Entry("vae", "sdxl_vae.safetensors", "/cfg/warmup_models.conf:6"),
    ]


def test_parse_reads_windows_line_endings_with_the_same_line_numbers() -> None:
    text = "# c\r\nloras/a.safetensors\r\n\r\nvae/b.pt # x\r\n"
    assert parse(text, "w.conf") == [
        Entry("loras", "a.safetensors", "w.conf:2"),
        Entry("vae", "b.pt", "w.conf:4"),
    ]


def test_parse_keeps_a_hash_that_is_part_of_a_file_name() -> None:
    [entry] = parse("loras/style#2.safetensors\n", "w.conf")
    assert entry.pattern == "style#2.safetensors"


def test_parse_splits_type_from_subfolders_and_wildcards() -> None:
    entries = parse("checkpoints/SDXL/x.safetensors\nloras/**/*.safetensors\nunet/f?.sft\n", "c")
    assert [(e.type, e.pattern) for e in entries] == [
        ("checkpoints", "SDXL/x.safetensors"),
        ("loras", "**/*.safetensors"),
        ("unet", "f?.sft"),
    ]
    assert entries[0].text == "checkpoints/SDXL/x.safetensors"


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("/workspace/ComfyUI/models/checkpoints/x.safetensors", "absolute path"),
        ("checkpoints/../../etc/passwd", "'..' component"),
        ("../models/x.pt", "'..' component"),
        ("checkpoints//x.safetensors", "empty path component"),
        ("checkpoints/SDXL/", "empty path component"),
        ("checkpoints\\x.safetensors", "backslash"),
        ("checkpoints", "type folder without a file"),
        ("check\x00points/x.pt", "control character"),
        ("loras/x\x1b.pt", "control character"),
        ("loras/x\x85.pt", "control character"),
        ("*/x.safetensors", "wildcard in the type folder"),
        ("lo?as/x.safetensors", "wildcard in the type folder"),
        ("loras/a**.safetensors", "'**' inside a name"),
        ("loras/./x.safetensors", "'.' component"),
    ],
)
def test_parse_rejects_a_bad_line_naming_file_line_and_the_line(line: str, why: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(f"# header\n{line}\n", "/v/warmup_models.conf")
    message = str(caught.value)
    assert message.startswith("/v/warmup_models.conf:2: ")
    assert repr(line) in message
    assert why in message
    assert message.endswith(")")  # ends with what to do
    assert caught.value.exit_code == EXIT_CONFIG


def test_parse_lists_every_bad_line_not_just_the_first() -> None:
    text = "checkpoints/ok.safetensors\n/abs.pt\nloras/ok.pt\nvae/../x.pt\nclip\n"
    with pytest.raises(ConfigError) as caught:
        parse(text, "w.conf")
    assert [p.split(": ")[0] for p in caught.value.problems] == ["w.conf:2", "w.conf:4", "w.conf:5"]
    assert "3 configuration problems" in str(caught.value)


def test_read_keeps_every_good_line_in_order_beside_the_bad_ones() -> None:
    text = "checkpoints/ok.safetensors\n/abs.pt\nloras/*\nvae/../x.pt\n"
    got = read(text, "w.conf")
    assert [(e.text, e.origin) for e in got.entries] == [
        ("checkpoints/ok.safetensors", "w.conf:1"),
        ("loras/*", "w.conf:3"),
    ]
    assert [p.split(": ")[0] for p in got.problems] == ["w.conf:2", "w.conf:4"]
    assert "'/abs.pt' is an absolute path" in got.problems[0]


# --- load and locate -----------------------------------------------------------------------


def test_load_reads_the_file_and_uses_its_path_as_origin(tmp_path: Path) -> None:
    conf = tmp_path / "warmup_models.conf"
    conf.write_text("# x\nloras/a.safetensors\n", encoding="utf-8")
    assert load(conf) == [Entry("loras", "a.safetensors", f"{conf}:2")]


def test_load_of_a_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.conf: file not found"):
        load(tmp_path / "nope.conf")


def test_load_of_an_unreadable_file_names_the_path(tmp_path: Path) -> None:
    binary = tmp_path / "binary.conf"
    binary.write_bytes(b"loras/\xff\xfe.pt\n")
    with pytest.raises(ConfigError, match=r"binary\.conf: cannot be read"):
        load(binary)
    with pytest.raises(ConfigError, match="cannot be read"):
        load(tmp_path)  # a directory


def test_locate_prefers_the_volume_copy_over_the_image_copy(tmp_path: Path) -> None:
    conf = from_env(
        {
            "COMFYUI_PATH": str(tmp_path / "workspace" / "ComfyUI"),
            "COMFY_INIT_CONFIG_DIR": str(tmp_path / "etc"),
        }
    )
    image = touch(tmp_path / "etc" / "warmup_models.conf")
    assert locate(conf, None) == image
    volume_root = touch(tmp_path / "workspace" / "warmup_models.conf")
    assert locate(conf, None) == volume_root
    comfy_dir = touch(tmp_path / "workspace" / "ComfyUI" / "warmup_models.conf")
    assert locate(conf, None) == comfy_dir


def test_locate_uses_an_absolute_warmup_config_only(tmp_path: Path) -> None:
    own = touch(tmp_path / "mine.conf")
    touch(tmp_path / "etc" / "warmup_models.conf")
    conf = from_env({"WARMUP_CONFIG": str(own), "COMFY_INIT_CONFIG_DIR": str(tmp_path / "etc")})
    assert locate(conf, None) == own


def test_locate_without_any_config_lists_where_it_looked(tmp_path: Path) -> None:
    conf = from_env(
        {
            "COMFYUI_PATH": str(tmp_path / "workspace" / "ComfyUI"),
            "COMFY_INIT_CONFIG_DIR": str(tmp_path / "etc"),
        }
    )
    with pytest.raises(ConfigError) as caught:
        locate(conf, None)
    message = str(caught.value)
    assert "WARMUP_CONFIG='warmup_models.conf'" in message
    for candidate in conf.warmup_config_candidates():
        assert str(candidate) in message


def test_locate_prefers_the_command_line_config_and_names_it_when_missing(
    tmp_path: Path,
) -> None:
    conf = from_env({"COMFY_INIT_CONFIG_DIR": str(tmp_path / "etc")})
    touch(tmp_path / "etc" / "warmup_models.conf")
    explicit = touch(tmp_path / "cli.conf")
    assert locate(conf, str(explicit)) == explicit
    with pytest.raises(ConfigError, match=r"CONFIG='.*absent\.conf'.*does not exist"):
        locate(conf, str(tmp_path / "absent.conf"))
    with pytest.raises(ConfigError, match="is a directory"):
        locate(conf, str(tmp_path))


# --- expand --------------------------------------------------------------------------------


def test_expand_literal_line_gives_the_file_with_its_size_and_mtime(models: Path) -> None:
    src = touch(models / "checkpoints" / "SDXL" / "x.safetensors", b"12345")
    os.utime(src, ns=(1_700_000_000_123_456_789, 1_700_000_000_123_456_789))
    [f] = expand(parse("checkpoints/SDXL/x.safetensors", "w.conf"), SearchPath(models)).files
    assert (f.type, f.name, f.source, f.size) == ("checkpoints", "SDXL/x.safetensors", src, 5)
    assert f.mtime_ns == 1_700_000_000_123_456_789
    assert f.source.is_absolute()
    assert f.entry.origin == "w.conf:1"


def test_expand_star_stays_in_one_folder_and_double_star_crosses_subfolders(
    models: Path,
) -> None:
    for rel in ("a.safetensors", "b.pt", "SDXL/c.safetensors", "SDXL/deep/d.safetensors"):
        touch(models / "loras" / rel)
    assert names(models, "loras/*.safetensors") == ["loras/a.safetensors"]
    assert names(models, "loras/**/*.safetensors") == [
        "loras/SDXL/c.safetensors",
        "loras/SDXL/deep/d.safetensors",
        "loras/a.safetensors",
    ]
    assert names(models, "loras/SDXL/**") == [
        "loras/SDXL/c.safetensors",
        "loras/SDXL/deep/d.safetensors",
    ]
    assert names(models, "loras/?.pt") == ["loras/b.pt"]
    assert names(models, "loras/[ab].*") == ["loras/a.safetensors", "loras/b.pt"]


def test_expand_copies_duplicates_and_overlaps_once_at_their_first_place(models: Path) -> None:
    for rel in ("a.pt", "b.pt", "c.pt"):
        touch(models / "loras" / rel)
    expansion = expand(
        parse("loras/c.pt\nloras/*.pt\nloras/c.pt\nloras/a.pt\n", "w.conf"), SearchPath(models)
    )
    assert [(f.name, f.entry.origin) for f in expansion.files] == [
        ("c.pt", "w.conf:1"),
        ("a.pt", "w.conf:2"),
        ("b.pt", "w.conf:2"),
    ]
    assert expansion.unmatched == []  # lines 3 and 4 matched, they just add nothing new


def test_expand_lists_lines_that_match_no_regular_file(models: Path) -> None:
    touch(models / "checkpoints" / "SDXL" / "x.safetensors")
    text = "checkpoints/missing.safetensors\ncheckpoints/SDXL\nvae/*.pt\ncheckpoints/SDXL/*\n"
    expansion = expand(parse(text, "w.conf"), SearchPath(models))
    assert [e.origin for e in expansion.unmatched] == ["w.conf:1", "w.conf:2", "w.conf:3"]
    assert [f.name for f in expansion.files] == ["SDXL/x.safetensors"]


@dataclass(frozen=True)
class TwoFolders(SearchPath):
    """A search path with a second folder per type, as ComfyUI's extra paths give."""

    second: Path = Path()

    def folders(self, type_: str) -> list[Path]:
        return [*super().folders(type_), self.second / type_]


def test_resolve_searches_each_folder_in_order_and_the_first_holding_a_name_wins(
    models: Path,
) -> None:
    second = models / "shared"
    first_copy = touch(models / "loras" / "both.pt")
    touch(second / "loras" / "both.pt", b"the second folder's copy")
    only_second = touch(second / "loras" / "deep" / "only.pt")
    entry = parse("loras/**/*.pt", "w.conf")[0]
    found = resolve(entry, TwoFolders(models, second=second))
    assert [(f.name, f.source) for f in found] == [
        ("both.pt", first_copy),
        ("deep/only.pt", only_second),
    ]
    assert all(f.entry == entry and f.type == "loras" for f in found)


def test_expand_never_matches_partial_copies_or_hidden_names_by_wildcard(models: Path) -> None:
    touch(models / "loras" / ".x.safetensors.abc123.comfy-init-partial")
    touch(models / "loras" / "y.safetensors.comfy-init-partial")
    touch(models / "loras" / ".hidden.safetensors")
    touch(models / "loras" / ".cache" / "z.safetensors")
    touch(models / "loras" / "real.safetensors")
    assert names(models, "loras/*\nloras/**/*") == ["loras/real.safetensors"]
    assert names(models, "loras/y.safetensors.comfy-init-partial\nloras/.*partial") == []
    assert names(models, "loras/.hidden.safetensors") == ["loras/.hidden.safetensors"]


def test_legacy_unet_and_clip_search_the_same_folders_as_their_new_names_as_comfyui_does(
    models: Path,
) -> None:
    flux = touch(models / "unet" / "flux1-dev.safetensors")
    touch(models / "clip" / "t5xxl_fp16.safetensors")
    other = touch(models / "diffusion_models" / "other.safetensors")
    both = touch(models / "unet" / "both.safetensors")
    touch(models / "diffusion_models" / "both.safetensors", b"searched after models/unet")
    assert names(models, "unet/flux1-dev.safetensors\nclip/*") == [
        "unet/flux1-dev.safetensors",
        "clip/t5xxl_fp16.safetensors",
    ]
    # ComfyUI's diffusion_models (alias unet) searches models/unet, then models/diffusion_models.
    text = "diffusion_models/flux1-dev.safetensors\nunet/other.safetensors\ndiffusion_models/both*"
    found = expand(parse(text, "w.conf"), SearchPath(models)).files
    assert [(f.type, f.name, f.source) for f in found] == [
        ("diffusion_models", "flux1-dev.safetensors", flux),
        ("unet", "other.safetensors", other),
        ("diffusion_models", "both.safetensors", both),
    ]
    # One model named under both names is one file for ComfyUI: copied once.
    twice = "unet/flux1-dev.safetensors\ndiffusion_models/flux1-dev.safetensors"
    assert names(models, twice) == ["unet/flux1-dev.safetensors"]


def test_expand_follows_symlinks_that_stay_inside_the_models_tree(models: Path) -> None:
    real = touch(models / "checkpoints" / "shared" / "x.safetensors")
    (models / "loras" / "linked").mkdir(parents=True)
    (models / "loras" / "linked" / "x.safetensors").symlink_to(real)
    (models / "vae").mkdir()
    (models / "vae" / "dir").symlink_to(models / "checkpoints" / "shared")
    (models / "loras" / "dangling.safetensors").symlink_to(models / "nowhere")
    expansion = expand(parse("loras/**/*.safetensors\nvae/dir/*", "w.conf"), SearchPath(models))
    assert [(f.type, f.name) for f in expansion.files] == [
        ("loras", "linked/x.safetensors"),
        ("vae", "dir/x.safetensors"),
    ]
    assert all(f.source.parent.name in ("linked", "dir") for f in expansion.files)


def test_expand_works_when_the_models_folder_itself_is_a_symlink(tmp_path: Path) -> None:
    volume = tmp_path / "runpod-volume" / "models"
    real = touch(volume / "checkpoints" / "x.safetensors")
    (volume / "loras").mkdir()
    (volume / "loras" / "x.safetensors").symlink_to("../checkpoints/x.safetensors")
    comfy = tmp_path / "workspace" / "ComfyUI"
    comfy.mkdir(parents=True)
    (comfy / "models").symlink_to(volume)
    expansion = expand(parse("checkpoints/*\nloras/**", "w.conf"), SearchPath(comfy / "models"))
    assert [(f.type, f.name) for f in expansion.files] == [
        ("checkpoints", "x.safetensors"),
        ("loras", "x.safetensors"),
    ]
    assert expansion.files[0].source == comfy / "models" / "checkpoints" / "x.safetensors"
    assert all(f.source.resolve() == real for f in expansion.files)


@pytest.mark.parametrize(
    "line",
    [
        "loras/out.safetensors",  # the file itself links out
        "loras/outdir/secret.safetensors",  # a literal folder on the way links out
        "loras/outdir/*",  # a folder to list links out
        "loras/**/secret.safetensors",  # a ** walk meets a folder that links out
        "loras/*/secret.safetensors",
        "loras/*.safetensors",  # a wildcard keeps the line's other files
    ],
)
def test_a_symlink_leading_out_of_the_fence_is_skipped_alone_named_with_its_line_and_target(
    models: Path, tmp_path: Path, line: str
) -> None:
    outside = touch(tmp_path / "elsewhere" / "secret.safetensors")
    (models / "loras").mkdir()
    (models / "loras" / "out.safetensors").symlink_to(outside)
    (models / "loras" / "outdir").symlink_to(outside.parent)
    kept = touch(models / "loras" / "kept.safetensors")
    expansion = expand(
        parse(f"# c\n{line}\nloras/kept.safetensors\n", "/v/w.conf"), SearchPath(models)
    )
    assert all(f.source.resolve().is_relative_to(models) for f in expansion.files)
    assert kept in [f.source for f in expansion.files]
    assert expansion.unmatched == []
    (skip,) = expansion.skipped
    assert (skip.origin, skip.text, skip.reason) == ("/v/w.conf:2", line, "link_outside")
    assert skip.message.startswith(f"/v/w.conf:2: warmup config line {line!r} reaches ")
    assert str(tmp_path / "elsewhere") in skip.message
    with pytest.raises(ConfigError) as caught:  # the strict form raises for this line alone
        resolve(parse(line, "/v/w.conf")[0], SearchPath(models))
    assert caught.value.problems == [skip.message.replace("/v/w.conf:2", "/v/w.conf:1")]


def test_a_symlink_loop_is_skipped_and_named_a_loop(models: Path) -> None:
    (models / "loras").mkdir()
    (models / "loras" / "loop.safetensors").symlink_to(models / "loras" / "loop.safetensors")
    touch(models / "loras" / "ok.safetensors")
    expansion = expand(parse("loras/*\nloras/loop.safetensors", "w.conf"), SearchPath(models))
    assert [f.name for f in expansion.files] == ["ok.safetensors"]
    assert [(s.origin, s.reason) for s in expansion.skipped] == [
        ("w.conf:1", "link_loop"),
        ("w.conf:2", "link_loop"),
    ]
    assert "loop.safetensors, a symlink that loops" in expansion.skipped[0].message


def test_expand_survives_a_symlink_cycle_and_lists_each_file_once(models: Path) -> None:
    touch(models / "loras" / "a" / "x.pt")
    (models / "loras" / "a" / "up").symlink_to(models / "loras")
    (models / "loras" / "a" / "self").symlink_to(models / "loras" / "a")
    assert names(models, "loras/**/*.pt") == ["loras/a/x.pt"]


def test_expand_stats_a_literal_line_and_lists_only_below_a_wildcards_literal_prefix(
    models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for rel in ("big/1.pt", "big/2.pt", "SDXL/a/x.pt", "SDXL/b/y.pt"):
        touch(models / "checkpoints" / rel)
    listed: list[str] = []
    real_scandir = os.scandir

    def spy(path: str | os.PathLike[str]) -> os._ScandirIterator[str]:
        listed.append(Path(path).relative_to(models).as_posix())
        return real_scandir(path)

    monkeypatch.setattr(expand_module.os, "scandir", spy)
    assert names(models, "checkpoints/SDXL/a/x.pt") == ["checkpoints/SDXL/a/x.pt"]
    assert listed == []
    assert names(models, "checkpoints/SDXL/*/y.pt") == ["checkpoints/SDXL/b/y.pt"]
    assert listed == ["checkpoints/SDXL"]


# --- properties ----------------------------------------------------------------------------

TYPES = ("loras", "unet")
DIRS = ("a", "b", "ab", ".h")
FILES = ("m.pt", "n.safetensors", "ab", ".h.pt", "p.pt.comfy-init-partial")
DIR_PARTS = ("*", "**", "?", "[ab]*", "a", "b", ".*")
FILE_PARTS = ("*", "**", "*.pt", "n.*", "m.pt", "?b", ".*", "*partial")


def joined(dirs: st.SearchStrategy[str], last: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(st.lists(dirs, max_size=2), last).map(lambda t: "/".join([*t[0], t[1]]))


tree_files = st.lists(
    st.tuples(st.sampled_from(TYPES), joined(st.sampled_from(DIRS), st.sampled_from(FILES))),
    min_size=1,
    max_size=12,
)
links = st.lists(
    st.tuples(st.sampled_from(TYPES), st.sampled_from(("l1", "l2", "a/l3")), st.booleans()),
    max_size=3,
)
patterns = st.lists(
    st.tuples(
        st.sampled_from(TYPES), joined(st.sampled_from(DIR_PARTS), st.sampled_from(FILE_PARTS))
    ),
    min_size=1,
    max_size=5,
).map(lambda ps: "\n".join(f"{t}/{p}" for t, p in ps))


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="manifest-prop-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def build_tree(
    base: Path, files: list[tuple[str, str]], symlinks: list[tuple[str, str, bool]]
) -> Path:
    shutil.rmtree(base, ignore_errors=True)
    models = base / "models"
    for type_, rel in files:
        # A file where a folder should be, or the reverse: the first one stays.
        with contextlib.suppress(FileExistsError, NotADirectoryError, IsADirectoryError):
            touch(models / type_ / rel)
    store = touch(models / "store" / "m.pt").parent  # links inside point here (no cycles)
    outside = touch(base / "outside" / "m.pt").parent
    for type_, rel, leads_out in symlinks:
        link = models / type_ / rel
        with contextlib.suppress(FileExistsError, NotADirectoryError):
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(outside if leads_out else store)
    models.mkdir(parents=True, exist_ok=True)
    return models


def oracle(models: Path, text: str) -> list[str]:
    """The expansion by the standard library's glob, for comparison: every file matched
    whose real path stays in the models folder."""
    out: list[str] = []
    root = models.resolve()
    for entry in parse(text, "w.conf"):
        type_dir = models / entry.type
        found = sorted(
            {
                name
                for name in glob.glob(entry.pattern, root_dir=type_dir, recursive=True)
                if (type_dir / name).is_file()
                and (type_dir / name).resolve().is_relative_to(root)
                and not name.endswith((".comfy-init-partial", "/"))  # "file/" is no file
            }
        )
        out += [f"{entry.type}/{n}" for n in found if f"{entry.type}/{n}" not in out]
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=tree_files, symlinks=links, text=patterns)
def test_expansion_stays_inside_models_yields_each_file_once_in_priority_order(
    scratch: Path, files: list[tuple[str, str]], symlinks: list[tuple[str, str, bool]], text: str
) -> None:
    models = build_tree(scratch / "t", files, symlinks)
    root = models.resolve()
    expansion = expand(parse(text, "w.conf"), SearchPath(models))
    event("refused" if expansion.skipped else "expanded")
    if expansion.skipped:  # only a symlink leading out is refused, and only what it reaches
        assert any(leads_out for _, _, leads_out in symlinks)
        assert all(s.reason == "link_outside" for s in expansion.skipped)
        assert all(str(scratch / "t" / "outside") in s.message for s in expansion.skipped)
    got = [f"{f.type}/{f.name}" for f in expansion.files]
    event(f"files: {min(len(got), 3)}{'+' if len(got) >= 3 else ''}")
    assert all(f.source.resolve().is_relative_to(root) for f in expansion.files)
    assert len(got) == len(set(got))
    assert got == oracle(models, text)
    matched = {f.entry for f in expansion.files}
    assert not matched & set(expansion.unmatched)


# --- the shipped example -------------------------------------------------------------------

EXAMPLE = Path(__file__).resolve().parent.parent / "warmup_models.conf"


def test_shipped_example_is_auto_alone_so_it_copies_only_what_the_fleet_used() -> None:
    (entry,) = load(EXAMPLE)
    assert entry.auto
    assert entry.text == "@auto"
    number = EXAMPLE.read_text(encoding="utf-8").split("\n").index("@auto") + 1
    assert entry.origin == f"{EXAMPLE}:{number}"


def test_every_example_line_in_the_shipped_config_is_valid_once_uncommented() -> None:
    lines = EXAMPLE.read_text(encoding="utf-8").split("\n")
    start = lines.index('# Examples (remove the "#" to use a line):')
    examples = [line.removeprefix("# ") for line in lines[start + 1 :] if line.startswith("# ")]
    entries = parse("\n".join(examples), "example")
    assert len(entries) == len(examples) >= 8
    assert {e.type for e in entries} >= {"checkpoints", "loras", "unet", "clip"}
