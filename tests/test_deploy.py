"""The deployment examples in deploy/ agree with what the image and the sidecar really have.

Prometheus files are checked by promtool (config, rules, and the rules' unit tests); every
PromQL expression in the alert rules and the Grafana dashboard names only metrics, labels and
label values from ``comfy_init.sidecar.catalog``; the Kubernetes example uses the image's
ports and paths (``image/layout.toml``) and comfy-init's own variables.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml

from comfy_init import settings
from comfy_init.pid1 import stop
from comfy_init.sidecar import catalog, web_config
from harness.certs import make_cert

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
LAYOUT = tomllib.loads((ROOT / "image" / "layout.toml").read_text(encoding="utf-8"))

# Series Prometheus records for every target itself, with the labels it gives every series.
PROMETHEUS_OWN_SERIES = {"up"}
TARGET_LABELS = {"job", "instance", "pod", "namespace"}

# ---- PromQL: which series and labels does an expression select?

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<braces>\{(?:[^{}"']|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')*\})
  | (?P<range>\[[^\]]*\])
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<variable>\$\{[^}]*\}|\$\w+)
  | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?:ms|[smhdwy])*)
  | (?P<ident>[A-Za-z_:][\w:]*)
  | (?P<other>.)
    """,
    re.VERBOSE,
)
_MATCHER = re.compile(
    r"""\s*([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')\s*,?"""
)
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
_LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}


def selectors(expr: str) -> Iterator[tuple[str, list[tuple[str, str, str]]]]:
    """Each vector selector of ``expr``: (metric name, [(label, operator, value), ...])."""
    tokens = [
        (m.lastgroup, m.group())
        for m in _TOKEN.finditer(expr)
        if m.lastgroup not in ("space", "variable")
    ]
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else ("", "")
        i += 1
        if kind == "braces":
            raise AssertionError(f"selector without a metric name in {expr!r}: {text}")
        if kind != "ident" or text in _KEYWORDS:
            continue
        if text in _LABEL_LIST_KEYWORDS:
            while i < len(tokens) and tokens[i] != ("other", ")"):  # skip "(label, ...)"
                i += 1
            continue
        if following == ("other", "(") or following[1] in ("by", "without"):
            continue  # a function, or an aggregation ("sum by (x) (...)")
        matchers: list[tuple[str, str, str]] = []
        if following[0] == "braces":
            body = following[1][1:-1]
            matchers = [(m[1], m[2], m[3][1:-1]) for m in _MATCHER.finditer(body)]
            leftover = _MATCHER.sub("", body).strip()
            assert not leftover, f"unparsed label matchers {leftover!r} in {expr!r}"
            i += 1
        yield text, matchers


def problems_with(expr: str) -> list[str]:
    """What in ``expr`` the sidecar does not export: unknown series, labels, label values."""
    found: list[str] = []
    series = {name: m for m in catalog.METRICS for name in catalog.series_names(m)}
    for name, matchers in selectors(expr):
        if name in PROMETHEUS_OWN_SERIES:
            allowed, metric = TARGET_LABELS, None
        elif name in series:
            metric = series[name]
            allowed = TARGET_LABELS | set(metric.labels)
            if name.endswith("_bucket") and metric.type == "histogram":
                allowed = allowed | {"le"}
        else:
            found.append(f"unknown metric {name}")
            continue
        for label, op, value in matchers:
            if label not in allowed:
                found.append(f"{name} has no label {label}")
            elif metric is not None and label not in TARGET_LABELS and "=" in op:
                documented = set(re.findall(r"\w+", metric.help)) | set(catalog.SOURCES)
                for word in value.split("|"):
                    if re.fullmatch(r"\w+", word) and word not in documented:
                        found.append(f"{name}{{{label}}} never has the value {word!r}")
    return found


def test_metric_check_flags_names_labels_and_values_the_sidecar_does_not_export() -> None:
    assert problems_with('sum by (instance) (comfyinit_comfyui_http_up{job="x"})') == []
    assert problems_with("rate(comfyinit_warmup_copy_duration_seconds_bucket[5m])") == []
    assert problems_with("comfyinit_comfyui_htttp_up == 0") == [
        "unknown metric comfyinit_comfyui_htttp_up"
    ]
    assert problems_with('comfyinit_cache_files{location="cache"}') == [
        "comfyinit_cache_files has no label location"
    ]
    assert problems_with('comfyinit_comfyui_process_state{state=~"FATAL|Crashed"}') == [
        "comfyinit_comfyui_process_state{state} never has the value 'Crashed'"
    ]
    assert problems_with("comfyinit_warmup_duration_seconds_bucket") == [
        "unknown metric comfyinit_warmup_duration_seconds_bucket"
    ]


# ---- Prometheus


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("promtool") is None:
        pytest.fail("promtool not found (Debian package prometheus; scripts/bootstrap installs it)")
    return subprocess.run(
        ["promtool", *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60, check=False
    )


def test_prometheus_example_config_and_its_rules_pass_promtool_check_config() -> None:
    result = _promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_pass_promtool_check_rules() -> None:
    result = _promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_fire_exactly_as_their_promtool_unit_tests_expect() -> None:
    result = _promtool("test", "rules", "alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def _alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_every_alert_expression_uses_only_what_the_sidecar_exports() -> None:
    problems = {r["alert"]: problems_with(r["expr"]) for r in _alert_rules()}
    assert {name: p for name, p in problems.items() if p} == {}


def test_every_alert_has_a_unit_test_in_which_it_fires() -> None:
    tests = yaml.safe_load((PROMETHEUS / "alerts.test.yml").read_text(encoding="utf-8"))
    fired = {
        case["alertname"]
        for test in tests["tests"]
        for case in test["alert_rule_test"]
        if case.get("exp_alerts")
    }
    assert {r["alert"] for r in _alert_rules()} - fired == set()


def test_alerts_cover_comfyui_down_crash_loops_cache_hit_ratio_and_cache_disk() -> None:
    used = {name for r in _alert_rules() for name, _ in selectors(r["expr"])}
    assert {
        "comfyinit_comfyui_http_up",
        "comfyinit_comfyui_restarts_total",
        "comfyinit_model_opens_total",
        "comfyinit_cache_filesystem_free_bytes",
    } <= used


def test_prometheus_example_scrapes_the_images_metrics_port_and_path() -> None:
    doc = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text(encoding="utf-8"))
    job = next(j for j in doc["scrape_configs"] if j["job_name"] == "comfy-init")
    assert job["metrics_path"] == "/metrics"
    targets = [t for group in job["static_configs"] for t in group["targets"]]
    assert targets
    assert all(t.rsplit(":", 1)[1] == str(LAYOUT["ports"]["metrics"]) for t in targets)


# ---- Grafana


def _dashboard() -> dict[str, Any]:
    return json.loads((DEPLOY / "grafana" / "comfy-init.json").read_text(encoding="utf-8"))


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # collapsed rows hold their panels


def _exprs() -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in _panels(_dashboard()["panels"])
        for target in panel.get("targets", [])
    ]


def test_every_dashboard_expression_uses_only_what_the_sidecar_exports() -> None:
    exprs = _exprs()
    assert len(exprs) >= 10
    problems = [(title, p) for title, expr in exprs if (p := problems_with(expr))]
    assert problems == []


def test_dashboard_pod_variable_lists_pods_from_a_metric_the_sidecar_exports() -> None:
    variable = next(v for v in _dashboard()["templating"]["list"] if v["name"] == "instance")
    m = re.fullmatch(r"label_values\((\w+),\s*instance\)", variable["definition"])
    assert m is not None
    assert m[1] in catalog.NAMES


def test_every_dashboard_query_is_filtered_by_the_pod_variable() -> None:
    unfiltered = [
        (title, name)
        for title, expr in _exprs()
        for name, matchers in selectors(expr)
        if ("instance", "=~", "$instance") not in matchers
    ]
    assert unfiltered == []


def test_dashboard_shows_warmup_cache_hits_comfyui_and_cache_disk() -> None:
    used = {name for _, expr in _exprs() for name, _ in selectors(expr)}
    assert {
        "comfyinit_warmup_duration_seconds",
        "comfyinit_warmup_throughput_bytes_per_second",
        "comfyinit_model_opens_total",
        "comfyinit_comfyui_http_up",
        "comfyinit_comfyui_restarts_total",
        "comfyinit_comfyui_queue_jobs",
        "comfyinit_cache_filesystem_free_bytes",
    } <= used


def test_dashboard_panels_have_unique_ids_and_do_not_overlap() -> None:
    panels = list(_panels(_dashboard()["panels"]))
    assert len({p["id"] for p in panels}) == len(panels)
    cells: dict[tuple[int, int], str] = {}
    for p in panels:
        g = p["gridPos"]
        assert g["x"] >= 0, p["title"]
        assert g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = p["title"]


# ---- Kubernetes


def _k8s() -> dict[str, dict[str, Any]]:
    text = (DEPLOY / "kubernetes" / "comfy-init.yaml").read_text(encoding="utf-8")
    return {doc["kind"]: doc for doc in yaml.safe_load_all(text) if doc}


def _container() -> dict[str, Any]:
    containers = _k8s()["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def _env() -> dict[str, str]:
    return {e["name"]: e["value"] for e in _container()["env"]}


def test_kubernetes_env_sets_only_comfy_init_variables_with_valid_values() -> None:
    env = _env()
    assert set(env) <= {v.name for v in settings.ENV_VARS}
    settings.from_env(env)  # raises ConfigError naming any bad value


def test_kubernetes_ports_and_scrape_annotations_are_the_images() -> None:
    objects = _k8s()
    ports = {p["name"]: p["containerPort"] for p in _container()["ports"]}
    assert ports == {"http": LAYOUT["ports"]["comfyui"], "metrics": LAYOUT["ports"]["metrics"]}
    conf = settings.from_env(_env())
    assert (conf.comfyui_port, conf.metrics_port) == (ports["http"], ports["metrics"])
    service = {p["name"]: p for p in objects["Service"]["spec"]["ports"]}
    assert {n: (p["port"], p["targetPort"]) for n, p in service.items()} == {
        "http": (ports["http"], "http"),
        "metrics": (ports["metrics"], "metrics"),
    }
    annotations = objects["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(ports["metrics"])
    assert annotations["prometheus.io/path"] == "/metrics"
    (endpoint,) = objects["ServiceMonitor"]["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("metrics", "/metrics")
    selector = objects["ServiceMonitor"]["spec"]["selector"]["matchLabels"]
    assert selector.items() <= objects["Service"]["metadata"]["labels"].items()


def test_kubernetes_probes_ask_the_sidecar_for_health_and_readiness() -> None:
    c = _container()
    probes = {
        k: (c[k]["httpGet"]["path"], c[k]["httpGet"]["port"]) for k in c if k.endswith("Probe")
    }
    health = LAYOUT["healthcheck"]["path"]
    assert probes == {
        "startupProbe": (health, "metrics"),
        "livenessProbe": (health, "metrics"),
        "readinessProbe": ("/readyz", "metrics"),
    }


def test_kubernetes_cache_is_a_size_limited_emptydir_at_cache_path_and_models_on_the_claim() -> (
    None
):
    objects = _k8s()
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in _container()["volumeMounts"]}
    conf = settings.from_env(_env())
    cache = volumes[mounts[str(conf.cache_path)]]
    assert cache["emptyDir"]["sizeLimit"]
    workspace = next(p for p in mounts if conf.comfyui_path.is_relative_to(p))
    claim = volumes[mounts[workspace]]["persistentVolumeClaim"]["claimName"]
    assert claim == objects["PersistentVolumeClaim"]["metadata"]["name"]
    assert "ReadWriteMany" in objects["PersistentVolumeClaim"]["spec"]["accessModes"]


def test_kubernetes_grace_period_outlasts_init_stop_budget_and_docker_grace() -> None:
    pod = _k8s()["Deployment"]["spec"]["template"]["spec"]
    conf = settings.from_env(_env())
    grace = pod["terminationGracePeriodSeconds"]
    assert grace >= stop.budget(conf.comfyui_stop_seconds).total
    assert grace >= stop.DOCKER_GRACE_SECONDS  # what the image is built to stop within


# ---- the metrics port's web config


def test_protected_scrape_job_uses_https_a_ca_and_basic_auth_on_the_metrics_port() -> None:
    doc = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text(encoding="utf-8"))
    job = next(j for j in doc["scrape_configs"] if j["job_name"] == "comfy-init-protected")
    assert (job["metrics_path"], job["scheme"]) == ("/metrics", "https")
    assert job["tls_config"]["ca_file"]
    assert job["basic_auth"]["username"] == "prometheus"
    assert job["basic_auth"]["password_file"]
    targets = [t for group in job["static_configs"] for t in group["targets"]]
    assert all(t.rsplit(":", 1)[1] == str(LAYOUT["ports"]["metrics"]) for t in targets)


def test_kubernetes_web_config_comes_from_the_secret_and_probes_and_scrapes_speak_https() -> None:
    objects = _k8s()
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    conf = settings.from_env(_env())
    assert conf.metrics_web_config is not None
    mounts = {m["name"]: Path(m["mountPath"]) for m in _container()["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    (name,) = [n for n, p in mounts.items() if conf.metrics_web_config.parent == p]
    secret = volumes[name]["secret"]
    items = {i["key"]: i["path"] for i in secret["items"]}
    assert items == {"web-config.yml": "web-config.yml", "tls.crt": "tls.crt", "tls.key": "tls.key"}
    assert conf.metrics_web_config.name == "web-config.yml"
    c = _container()
    assert {c[k]["httpGet"]["scheme"] for k in c if k.endswith("Probe")} == {"HTTPS"}
    (endpoint,) = objects["ServiceMonitor"]["spec"]["endpoints"]
    assert endpoint["scheme"] == "https"
    assert endpoint["tlsConfig"]["ca"]["secret"]["name"] == secret["secretName"]
    auth = endpoint["basicAuth"]
    assert {auth["username"]["name"], auth["password"]["name"]} == {secret["secretName"]}
    annotations = objects["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scheme"] == "https"


def test_the_example_web_config_loads_beside_a_certificate_with_the_documented_password(
    tmp_path: Path,
) -> None:
    shutil.copy(DEPLOY / "kubernetes" / "web-config.yml", tmp_path / "web-config.yml")
    pair = make_cert(tmp_path, "tls", san="DNS:comfyui")
    pair.cert.rename(tmp_path / "tls.crt")
    pair.key.rename(tmp_path / "tls.key")
    config = web_config.load(tmp_path / "web-config.yml")
    assert config.tls_context is not None
    assert bcrypt.checkpw(b"change-me", config.users["prometheus"])
    text = (DEPLOY / "kubernetes" / "comfy-init.yaml").read_text(encoding="utf-8")
    assert "--from-literal=password=change-me" in text
