"""Every file in configs/ loads, validates for the command its header names, and is listed in the
README; the demo file is the `make demo` run.

A config names its command in a comment line (``#   python -m unnas.rank --config configs/X.yaml
...``). The test runs that command's own argument parsing and validation (no data, no training):
``unnas.rank`` and ``unnas.longtail`` are checked in depth (names, numbers, the objective options
against the run, the sampled population); a file for another command is at least loaded through
the schema (unknown keys and wrong types refused)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from unnas import config
from unnas.objectives.base import DataInfo, objective_class

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for ext in ("yaml", "yml") for p in (ROOT / "configs").glob(f"*.{ext}"))
# shapes of datasets whose files are not needed to validate a config: (channels, classes, side, train images)
SHAPES = {"cifar10": (3, 10, 32, 50000), "cifar100": (3, 100, 32, 50000), "mnist": (1, 10, 28, 60000),
          "fashion-mnist": (1, 10, 28, 60000)}


def command(path: Path) -> list[str]:
    """The command line in the file's header, from ``python -m MODULE`` on."""
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        m = re.search(r"python -m (\S+.*)$", line)
        if m:
            return shlex.split(m[1])
    raise AssertionError(f"{path.name}: no '# python -m MODULE --config {path.relative_to(ROOT)} ...' line")


def data_info(cfg) -> DataInfo | None:
    name = cfg.data.name[:-3] if cfg.data.name.endswith("-lt") else cfg.data.name
    if name not in SHAPES:
        return None
    c, k, side, n = SHAPES[name]
    return DataInfo(c, k, (side, side), (0.5,) * c, (0.25,) * c, int(n * (1 - cfg.data.val_fraction)))


def check_rank(args: list[str]) -> None:
    from unnas import rank
    from unnas.population import sample_population
    from unnas.ranking import check_scores, validate
    from unnas.runner import objectives_of, proxies_of

    a = rank.parser().parse_intermixed_args(args)
    cfg = config.load(a.config, a.overrides, base=rank.options_to_config(a))
    validate(cfg)
    check_scores(cfg)  # proxies, their options, ensembles, the budget
    info = data_info(cfg)
    # a proxies-only run (--pretext none) builds its candidates for the proxy loss's input
    objectives = objectives_of(cfg) or ([cfg.proxy.loss] if proxies_of(cfg) else [])
    if info is not None:
        for name in objectives:
            cls = objective_class(name)
            cls.check_data(info, cfg.objectives.get(name))
            cls.check_run(cfg.objectives.get(name), cfg.train, info)
    channels = objective_class(objectives[0]).input_channels(info.channels if info else 3)
    specs = sample_population(cfg.model.generator, cfg.run.num_archs, cfg.run.master_seed, dict(cfg.model.params),
                              in_channels=channels, image_size=info.image_size[0] if info else 32)
    _builds(specs[0], channels)


def check_longtail(args: list[str]) -> None:
    from unnas import longtail
    from unnas.longtail_run import resolve_specs, validate

    a = longtail.parser().parse_intermixed_args(args)
    stage2 = [o for o in a.overrides if o.startswith(longtail.STAGE2_PREFIX)]
    cfg = config.load(a.config, [o for o in a.overrides if o not in stage2], base=longtail.options_to_config(a))
    opts = longtail.longtail_options(a, stage2)
    validate(cfg, opts)
    info = data_info(cfg)
    channels = objective_class(cfg.run.pretext).input_channels(info.channels if info else 3)
    specs = resolve_specs(cfg, opts, channels, info.image_size[0] if info else 32)
    _builds(specs[0], channels)


def _builds(spec, channels: int) -> None:
    from unnas.generators.complexity import build_meta, count_params

    assert count_params(build_meta(spec, channels)) > 0


CHECKS = {"unnas.rank": check_rank, "unnas.longtail": check_longtail}


def test_there_are_configs():
    names = {p.stem for p in CONFIGS}
    assert {"demo", "unnas-cifar10-rotation", "unnas-cifar10-jigsaw", "unnas-cifar10-colorization", "moco-cifar10",
            "cifar10-lt-decoupled"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_loads_and_validates_for_its_command(path):
    config.load(path)  # the schema: unknown keys and wrong types are refused
    cmd = command(path)
    module, args = cmd[0], cmd[1:]
    assert "--config" in args and (ROOT / args[args.index("--config") + 1]).resolve() == path.resolve()
    args[args.index("--config") + 1] = str(path)
    check = CHECKS.get(module)
    if check is not None:
        check(args)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_the_configs_page_lists_the_config(path):
    assert f"configs/{path.name}" in (ROOT / "docs" / "configs.md").read_text()


def test_demo_config_is_the_make_demo_run():
    from unnas import rank
    from unnas.ranking import default_name

    recipe = re.search(r"^demo:.*\n\t\$\(PY\) -m unnas\.rank ?(.*)$", (ROOT / "Makefile").read_text(), re.M)
    a = rank.parser().parse_intermixed_args(shlex.split(recipe[1]))
    make_demo = config.load(None, a.overrides, base=rank.options_to_config(a))
    cfg = config.load(ROOT / "configs" / "demo.yaml")
    assert config.to_dict(cfg) == config.to_dict(make_demo)
    assert default_name(cfg) == default_name(make_demo)  # the same run folder


def test_presets_are_the_published_networks():
    # ResNet-18 with the CIFAR stem: 11,173,962 parameters with its 10-class classifier (5,130)
    from unnas.spec import ArchSpec, build

    moco = config.load(ROOT / "configs" / "moco-cifar10.yaml")
    net = build(ArchSpec(moco.model.generator, dict(moco.model.params), 0), 3)
    assert sum(p.numel() for p in net.parameters()) == 11_173_962 - 5_130
    unnas = config.load(ROOT / "configs" / "unnas-cifar10-rotation.yaml")
    assert (unnas.model.generator, unnas.model.params) == ("nds-darts", {"width": 16, "depth": 20})
