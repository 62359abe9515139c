"""Populations: N distinct candidate specs drawn from a generator with one master seed.

``sample_population(generator, n, master_seed, base_params)`` draws, from
``numpy.random.default_rng(master_seed)`` only, for each candidate in turn: the values of the
``vary`` parameters (uniform over their lists), the generator's design-space parameters
(``Generator.sample_params(rng, base)``; ``base_params`` stay fixed) and a spec seed (a 31-bit
integer; 0 when the generator says the seed does not change the network, e.g. a fixed
NAS-Bench-201 cell or a timm model, so that equal networks get equal ``arch_id``). A candidate
whose ``arch_id`` was already drawn is redrawn. The same arguments always give the same list.

Complexity control (as NDS): with ``params_range=(lo, hi)`` and / or ``flops_range=(lo, hi)``
(inclusive; None for an open end) only candidates whose backbone parameter count / FLOPs of
one ``in_channels x image_size x image_size`` image (for a video generator: one clip of ``frames``
such frames) fall in the range are kept
(:mod:`unnas.generators.complexity`). If ``n`` candidates cannot be found within ``max_draws``
draws, :class:`UserError` says how many were found and the range that was sampled.

``parse_generator("timm:resnet18") -> ("timm", {"model": "resnet18"})`` lets command lines
name a timm model directly.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from unnas.errors import UserError
from unnas.spec import ArchSpec, get_generator

Range = tuple[float | None, float | None]


def parse_generator(text: str) -> tuple[str, dict[str, Any]]:
    """Split a generator name with an inline argument: ``timm:<model>`` -> ``("timm", {"model": ...})``."""
    if not isinstance(text, str) or not text:
        raise UserError("--generator", text, None, message="a generator name is required")
    name, sep, arg = text.partition(":")
    if not sep:
        return text, {}
    if name == "timm" and arg:
        return "timm", {"model": arg}
    raise UserError("--generator", text, "NAME or timm:MODEL", message="only timm takes an inline argument")


def parse_params(items: list[str], field: str = "--params") -> dict[str, Any]:
    """``["nodes=16", "depths=[1,2]", "p=1e-3"]`` -> ``{"nodes": 16, "depths": [1, 2], "p": 0.001}``
    (values read as JSON, else as YAML, else kept as text)."""
    for item in items:
        if "=" not in item or item.startswith("="):
            raise UserError(field, item, "K=V pairs, e.g. width=16")
    return {k: parse_value(v) for k, v in (item.split("=", 1) for item in items)}


def parse_vary(items: Sequence[str]) -> dict[str, list]:
    """``["width=8,16", "depths=[[1],[2]]"]`` -> ``{"width": [8, 16], "depths": [[1], [2]]}`` (``--vary``)."""
    out = {}
    for key, value in parse_params(list(items), "--vary").items():
        out[key] = value if isinstance(value, list) else [parse_value(v) for v in str(value).split(",")]
    return out


def parse_value(text: str) -> Any:
    """A command-line value: JSON (``1e-3`` is a number), else safe YAML (``[a, b]``), else the text."""
    import json

    import yaml

    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


_BOUND_FLAGS = {"params": ("--min-params", "--max-params"), "flops": ("--min-flops", "--max-flops")}


def _check_range(what: str, rng: Range | None) -> Range | None:
    """``what`` (params | flops) bounds, checked; errors name the flag of the bad bound."""
    if rng is None:
        return None
    lo_flag, hi_flag = _BOUND_FLAGS[what]
    try:
        lo, hi = rng
    except (TypeError, ValueError):
        raise UserError(f"{lo_flag} / {hi_flag}", rng, "a (low, high) pair; None for an open end") from None
    for flag, v in ((lo_flag, lo), (hi_flag, hi)):
        if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0):
            raise UserError(flag, v, "a non-negative number, or none for an open end")
    if lo is not None and hi is not None and lo > hi:
        raise UserError(lo_flag, f"{lo:g}", f"at most {hi_flag} ({hi:g})",
                        message=f"empty range: {lo:g} is above {hi_flag} {hi:g}")
    return (lo, hi)


def _inside(v: float, rng: Range | None) -> bool:
    return rng is None or ((rng[0] is None or v >= rng[0]) and (rng[1] is None or v <= rng[1]))


def _fmt(rng: Range) -> str:
    lo, hi = rng
    return f"[{'-inf' if lo is None else f'{lo:g}'}, {'inf' if hi is None else f'{hi:g}'}]"


def uses_seed(gen: Any, params: Mapping[str, Any]) -> bool:
    """Whether the spec seed changes the network (generators without ``uses_seed``: assume yes)."""
    fn = getattr(gen, "uses_seed", None)
    return True if fn is None else bool(fn(params))


def sample_population(generator: str, n: int, master_seed: int, base_params: dict | None = None, *,
                      in_channels: int = 3, image_size: int = 32, params_range: Range | None = None,
                      flops_range: Range | None = None, vary: Mapping[str, Sequence[Any]] | None = None,
                      max_draws: int | None = None, frames: int = 0) -> list[ArchSpec]:
    """``n`` distinct specs of ``generator`` (see the module docstring)."""
    name, inline = parse_generator(generator)
    gen = get_generator(name)
    base = {**inline, **(base_params or {})}
    gen.resolve(base)  # unknown or mistyped parameters fail here, before any sampling
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise UserError("--num-archs", n, "a non-negative integer")
    params_range = _check_range("params", params_range)
    flops_range = _check_range("flops", flops_range)
    vary = {k: list(v) for k, v in (vary or {}).items()}
    for key, values in vary.items():
        if key in base:
            raise UserError(f"vary {key}", values, None, message="a parameter cannot be both fixed and varied")
        if not values:
            raise UserError(f"vary {key}", values, "a non-empty list of values")
    max_draws = max_draws or max(200, 50 * n)

    rng = np.random.default_rng(master_seed)
    specs: list[ArchSpec] = []
    seen: set[str] = set()
    observed: dict[str, list[float]] = {"params": [], "flops": []}
    draws = 0
    while len(specs) < n and draws < max_draws:
        draws += 1
        b = dict(base)
        for key, values in vary.items():
            b[key] = values[int(rng.integers(len(values)))]
        params = gen.sample_params(rng, b)
        seed = int(rng.integers(2 ** 31))
        spec = ArchSpec(name, params, seed if uses_seed(gen, params) else 0)
        if spec.arch_id in seen:
            continue
        seen.add(spec.arch_id)
        if params_range is not None or flops_range is not None:
            c = _measure(spec, in_channels, image_size, need_flops=flops_range is not None, frames=frames)
            observed["params"].append(c["params"])
            if "flops" in c:
                observed["flops"].append(c["flops"])
            if not (_inside(c["params"], params_range) and _inside(c.get("flops", 0), flops_range)):
                continue
        specs.append(spec)
    if len(specs) < n:
        field = _binding_bound(params_range, flops_range, observed) if len(seen) > len(specs) else "--num-archs"
        raise UserError(field, n if field == "--num-archs" else _bound_value(field, params_range, flops_range),
                        "fewer candidates" if field == "--num-archs" else "a bound the sampled candidates can meet",
                        message=_shortfall(generator, len(specs), n, draws, len(seen),
                                                 params_range, flops_range, observed))
    return specs


def _binding_bound(params_range: Range | None, flops_range: Range | None, observed: dict[str, list[float]]) -> str:
    """The complexity bound flag that rejected the most sampled candidates."""
    rejected = {}
    for key, rng in (("params", params_range), ("flops", flops_range)):
        for end, flag in zip((0, 1), _BOUND_FLAGS[key]):
            if rng is not None and rng[end] is not None:
                vals = observed[key]
                rejected[flag] = sum((v < rng[0]) if end == 0 else (v > rng[1]) for v in vals)
    return max(rejected, key=rejected.get) if rejected else "--num-archs"


def _bound_value(flag: str, params_range: Range | None, flops_range: Range | None) -> str:
    rng = params_range if "params" in flag else flops_range
    return f"{rng[0 if flag.startswith('--min') else 1]:g}"


def _measure(spec: ArchSpec, in_channels: int, image_size: int, need_flops: bool, frames: int = 0) -> dict[str, int]:
    from unnas.generators.complexity import build_meta, complexity, count_params

    if need_flops:
        return complexity(spec, in_channels, image_size, frames)
    return {"params": count_params(build_meta(spec, in_channels))}


def _shortfall(name, found, n, draws, distinct, params_range, flops_range, observed) -> str:
    what = f"found {found} of {n} candidates of generator {name} in {draws} draws ({distinct} distinct)"
    parts = []
    for key, rng in (("params", params_range), ("flops", flops_range)):
        if rng is not None:
            vals = observed[key]
            seen = f"sampled {key} ranged over [{min(vals):g}, {max(vals):g}]" if vals else f"no {key} measured"
            parts.append(f"{key} range {_fmt(rng)}; {seen}")
    if parts:
        return what + ": " + "; ".join(parts)
    return (what + f": the design space of {name} holds only {distinct} distinct network(s) for these parameters; "
            f"ask for at most {distinct} (--num-archs) or widen the space (--vary, fewer fixed --params)")
