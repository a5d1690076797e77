"""The programs of RunPod's conventions: sshd, JupyterLab, the post-start hook, and ComfyUI
left stopped while the volume has none; rendered and read back by supervisord's parser."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from supervisor.options import ServerOptions

from comfy_init import settings
from comfy_init.supervisord import programs, render

# A test value; % must reach JupyterLab as it is, not as an expansion.
PASSWORD = "pa%(x)s$$word"  # noqa: S105


def start(**changes: Any) -> programs.Start:
    s = settings.from_env(
        {"COMFYUI_PATH": "/workspace/ComfyUI", "JUPYTER_PASSWORD": PASSWORD, "METRICS": "0"}
    )
    args: dict[str, Any] = {
        "python": "/usr/bin/python3",
        "own_python": "/opt/comfy-init/bin/python",
        "sshd": "/usr/sbin/sshd",
        "jupyter_lab": "/usr/local/bin/jupyter-lab",
        "post_start": True,
    }
    return programs.Start(s, **{**args, **changes})


def by_name(chosen: list[programs.Program]) -> dict[str, programs.Program]:
    return {p.name: p for p in chosen}


def test_each_convention_is_a_program_only_when_it_runs() -> None:
    assert [p.name for p in programs.for_start(start())] == [
        "comfyui",
        "sshd",
        "jupyter",
        "post_start",
    ]
    bare = start(sshd=None, jupyter_lab=None, post_start=False)
    assert [p.name for p in programs.for_start(bare)] == ["comfyui"]


def test_sshd_starts_first_and_stops_last_in_the_foreground() -> None:
    chosen = by_name(programs.for_start(start()))
    sshd = chosen["sshd"]
    assert sshd.argv == ("/usr/sbin/sshd", "-D", "-e")
    assert sshd.priority == min(p.priority for p in chosen.values())
    assert sshd.autorestart


def test_jupyter_is_rooted_at_the_volume_with_its_password_in_the_environment_only() -> None:
    jupyter = by_name(programs.for_start(start()))["jupyter"]
    assert "--ServerApp.root_dir=/workspace" in jupyter.argv
    assert jupyter.environment["JUPYTER_TOKEN"] == PASSWORD
    assert not any(PASSWORD in a for a in jupyter.argv)


def test_post_start_is_a_one_shot_comfy_init_hook_that_does_not_restart() -> None:
    hook = by_name(programs.for_start(start()))["post_start"]
    assert hook.argv[-5:] == (
        "/opt/comfy-init/bin/python",
        "-m",
        "comfy_init",
        "hook",
        "post-start",
    )
    assert (hook.autorestart, hook.start_seconds, hook.exit_codes) == (False, 0, (0,))


def test_comfyui_is_left_stopped_while_it_is_not_installed() -> None:
    assert by_name(programs.for_start(start()))["comfyui"].autostart
    assert not by_name(programs.for_start(start(comfyui_installed=False)))["comfyui"].autostart


def test_the_rendered_config_gives_supervisord_these_programs_as_decided(tmp_path: Path) -> None:
    chosen = programs.for_start(start(comfyui_installed=False))
    ctx = render.context(start().settings, template="t", user="root", programs=chosen)
    text = render.render(render.SHIPPED_TEMPLATE.read_text(), "shipped", ctx)
    (tmp_path / "logs").mkdir()
    options = ServerOptions()
    options.configfile = str(tmp_path / "supervisord.conf")
    options.here = str(tmp_path)
    options.read_config(io.StringIO(text.replace("/run/comfy-init", str(tmp_path))))
    seen = {
        proc.name: proc
        for group in options.configroot.supervisord.process_group_configs
        for proc in group.process_configs
    }
    assert {n: seen[n].autostart for n in seen} == {
        "comfyui": False,
        "sshd": True,
        "jupyter": True,
        "post_start": True,
    }
    assert seen["jupyter"].environment["JUPYTER_TOKEN"] == PASSWORD
    assert seen["sshd"].priority < seen["jupyter"].priority < seen["comfyui"].priority
