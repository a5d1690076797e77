"""A synthetic multi-day ComfyUI fleet workload: models of realistic sizes, workflows of a
Zipf-like popularity, pod boots (sessions) each day, and a shift of the popular set.

A workflow is a base model (an SD 1.5 / SDXL checkpoint, or a Flux-style diffusion model with
its text encoder), a VAE sometimes, a few LoRAs, sometimes a ControlNet and an upscaler.  A
session is one pod boot: it runs a few workflows one after the other (chosen by popularity);
each model a workflow needs is opened when the workflow first runs, and again now and then
(ComfyUI drops a model from memory when another one needs the room).  Half way through, the
popularity of the workflows is shuffled: what the fleet uses changes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

GB = 10**9
MB = 10**6


@dataclass(frozen=True)
class Model:
    type: str
    name: str
    size: int

    @property
    def key(self) -> tuple[str, str]:
        return self.type, self.name


@dataclass(frozen=True)
class Load:
    """One open of a model, ``seconds`` after its pod booted."""

    seconds: float
    model: Model


@dataclass(frozen=True)
class Session:
    day: int
    pod: str
    boot: float  # seconds into the day
    loads: tuple[Load, ...]


@dataclass(frozen=True)
class Params:
    days: int = 28
    shift_day: int = 14
    pods: int = 4
    sessions_per_day: int = 24
    flows_per_session: float = 6.0  # mean workflows a pod runs between boot and stop
    workflows: int = 60
    zipf_s: float = 1.1
    seed: int = 7


# (type, count, smallest, largest size): the ranges of the public models of each kind.
CATALOGUE: tuple[tuple[str, int, int, int], ...] = (
    ("checkpoints", 28, 2 * GB, 7 * GB),
    ("diffusion_models", 8, 11 * GB, 24 * GB),
    ("text_encoders", 4, 5 * GB, 10 * GB),
    ("vae", 6, 80 * MB, 340 * MB),
    ("loras", 80, 20 * MB, 900 * MB),
    ("controlnet", 14, 700 * MB, 2500 * MB),
    ("upscale_models", 10, 17 * MB, 70 * MB),
)


def models(rng: random.Random) -> dict[str, list[Model]]:
    out: dict[str, list[Model]] = {}
    for type_, count, lo, hi in CATALOGUE:
        out[type_] = [
            Model(type_, f"{type_[:-1]}-{i:03d}.safetensors", int(rng.uniform(lo, hi)))
            for i in range(count)
        ]
    return out


def workflows(rng: random.Random, catalogue: dict[str, list[Model]], n: int) -> list[list[Model]]:
    flows: list[list[Model]] = []
    for _ in range(n):
        if rng.random() < 0.3:
            flow = [
                rng.choice(catalogue["diffusion_models"]),
                rng.choice(catalogue["text_encoders"]),
            ]
        else:
            flow = [rng.choice(catalogue["checkpoints"])]
        if rng.random() < 0.5:
            flow.append(rng.choice(catalogue["vae"]))
        flow += rng.sample(catalogue["loras"], rng.randint(0, 3))
        if rng.random() < 0.3:
            flow.append(rng.choice(catalogue["controlnet"]))
        if rng.random() < 0.3:
            flow.append(rng.choice(catalogue["upscale_models"]))
        flows.append(flow)
    return flows


@dataclass(frozen=True)
class Workload:
    models: list[Model]
    sessions: list[Session]  # in time order
    # expected opens of each model per workflow run, before and after the shift
    popularity: tuple[dict[tuple[str, str], float], dict[tuple[str, str], float]]

    def popular(self, day: int, params: Params) -> dict[tuple[str, str], float]:
        return self.popularity[day >= params.shift_day]


def build(params: Params) -> Workload:
    """Every model of the catalogue and every session of every day."""
    rng = random.Random(params.seed)  # noqa: S311 - a reproducible workload, not secrets
    catalogue = models(rng)
    flows = workflows(rng, catalogue, params.workflows)
    weights = [1.0 / (r + 1) ** params.zipf_s for r in range(len(flows))]
    popular = list(range(len(flows)))
    rng.shuffle(popular)
    phases = [_expected(flows, popular, weights)]
    out: list[Session] = []
    for day in range(params.days):
        if day == params.shift_day:
            rng.shuffle(popular)
            phases.append(_expected(flows, popular, weights))
        for _ in range(params.sessions_per_day):
            pod = f"pod-{rng.randrange(params.pods)}"
            boot = rng.uniform(0, 86400 - 4 * 3600)
            k = 1 + int(rng.expovariate(1 / max(params.flows_per_session - 1, 1e-9)))
            picks = rng.choices(popular, weights=weights, k=k)
            out.append(Session(day, pod, boot, tuple(_loads(rng, [flows[i] for i in picks]))))
    out.sort(key=lambda s: (s.day, s.boot))
    return Workload([m for ms in catalogue.values() for m in ms], out, (phases[0], phases[-1]))


def _expected(
    flows: list[list[Model]], popular: list[int], weights: list[float]
) -> dict[tuple[str, str], float]:
    total = sum(weights)
    out: dict[tuple[str, str], float] = {}
    for w, i in zip(weights, popular, strict=True):
        for m in flows[i]:
            out[m.key] = out.get(m.key, 0.0) + w / total
    return out


def _loads(rng: random.Random, flows: list[list[Model]]) -> list[Load]:
    loads: list[Load] = []
    t = rng.uniform(5, 120)  # the first job arrives soon after the pod is up
    for flow in flows:
        for _ in range(1 + int(rng.expovariate(1.0))):  # reloads after memory pressure
            loads.extend(Load(t + i * 0.5, m) for i, m in enumerate(flow))
            t += rng.uniform(60, 900)
    return loads
