"""The Python API (re-exported by :mod:`unnas`): draw a population, score it with proxies, run a
ranking, load a finished run or a reference table, and compute agreement. Functions return objects;
the ``unnas`` command is a thin layer over the same library. Importing this module is cheap: the
heavy modules load when a function is called.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from unnas.errors import UserError


@dataclass
class Run:
    """A finished (or partly finished) run folder.

    ``table``: one dict per candidate, best first (``arch_id``, ``params``, ``flops``, every score
    column, ``supervised`` and ``reference`` when there is one; NaN where a job has not finished).
    ``agreement``: score column -> Spearman / Kendall / top-k agreement with the reference.
    ``files``: name -> path of the run folder's outputs that exist.
    """

    path: Path
    config: dict
    table: list[dict]
    agreement: dict[str, dict]
    columns: dict[str, dict]
    status: dict[str, int]
    files: dict[str, Path] = field(default_factory=dict)

    def column(self, name: str) -> list[float]:
        """One column of :attr:`table`, in table order."""
        return [row.get(name, float("nan")) for row in self.table]


def sample_population(generator: str, n: int = 8, seed: int = 0, params: dict | None = None, *, image_size: int = 32,
           in_channels: int = 3, **options: Any) -> list:
    """``n`` distinct :class:`~unnas.spec.ArchSpec` of ``generator`` drawn with population seed ``seed``
    (``options``: ``params_range``, ``flops_range``, ``vary``, ``max_draws``, ``frames``)."""
    from unnas.population import sample_population

    return sample_population(generator, n, seed, params or {}, in_channels=in_channels, image_size=image_size,
                             **options)


def _sections(options: dict) -> dict:
    """Keyword options (the command-line names with underscores: ``num_archs``, ``seed``, ...) -> config
    sections, exactly as ``unnas rank`` maps its flags."""
    import argparse

    from unnas.rank import CONFIG_KEYS, options_to_config

    aliases = {"seed": "master_seed", "n": "num_archs"}
    given = {aliases.get(k, k): v for k, v in options.items()}
    allowed = {*CONFIG_KEYS, "params", "ensemble", "rungs"}
    for key in given:
        if key not in allowed:
            raise UserError(key, given[key], sorted(allowed | set(aliases)), message=f"unknown option {key!r}")
    ns = {k: None for k in CONFIG_KEYS} | {"params": [], "ensemble": [], "rungs": None, "generator": None}
    ns.update(given)
    if isinstance(ns["params"], dict):
        params, ns["params"] = ns["params"], []
    else:
        params = None
    ns["ensemble"] = list(ns["ensemble"] or [])
    base = options_to_config(argparse.Namespace(**ns))
    if params:
        base.setdefault("model", {})["params"] = {**base.get("model", {}).get("params", {}), **params}
    return base


def rank_population(config: str | Path | None = None, overrides: Sequence[str] = (), *, quiet: bool = True,
         **options: Any) -> Run:
    """Run (or resume) a ranking run and return it as a :class:`Run`.

    ``config``: a YAML file or a shipped config's name (``"fidelity"``); ``overrides``: dotted
    ``key=value`` strings; ``options``: ``unnas rank``'s options with underscores (``generator``,
    ``num_archs`` or ``n``, ``seed``, ``pretext``, ``proxies``, ``data``, ``epochs``, ``runs_dir``,
    ``name``, ``reference``, ``params`` as a dict, ...). Bad input raises :class:`~unnas.errors.UserError`.
    """
    from unnas import config as config_mod
    from unnas.ranking import rank_run

    cfg = config_mod.load(config, list(overrides), base=_sections(options))
    status, run_dir = rank_run(cfg, quiet=quiet)
    if status != 0:
        raise KeyboardInterrupt(f"ranking run {run_dir} interrupted; call rank_population() again to resume")
    return load_run(run_dir)


def score(generator: str, proxies: Iterable[str] | str = ("synflow",), *, n: int = 8, seed: int = 0,
          **options: Any) -> Run:
    """Score ``n`` candidates of ``generator`` with zero-cost ``proxies`` (nothing is trained, no
    labels are read): a ranking run with no objective and no supervised jobs."""
    names = proxies if isinstance(proxies, str) else ",".join(proxies)
    options = {"pretext": "none", "supervised": False, **options}
    return rank_population(generator=generator, proxies=names, num_archs=n, seed=seed, **options)


def load_run(path: str | Path, *, n_boot: int = 1000, seed: int = 0) -> Run:
    """Read a run folder (its store and config) into a :class:`Run`, recomputing the ranking and its
    agreement (``n_boot`` bootstrap resamples for the intervals, seeded by ``seed``)."""
    from unnas.analysis import load_run as read_run
    from unnas.analysis import ranking_of
    from unnas.store import summarize

    info = read_run(path)
    objectives = [o.strip() for o in str((info.config.get("run") or {}).get("pretext", "")).split(",")]
    rk, _ = ranking_of(info.rows, info.config, n_boot=n_boot, seed=seed,
                       objective_order=[o for o in objectives if o and o != "none"])
    names = ("ranking.json", "ranking.csv", "provenance.json", "results.csv", "report.html", "report.json",
             "config.yaml", "store.sqlite", "log.jsonl", "search.json")
    files = {n: info.path / n for n in names if (info.path / n).is_file()}
    return Run(info.path, info.config, rk.table(), rk.agreement, {n: c.to_json() for n, c in rk.columns.items()},
               summarize(info.rows), files)


def load_reference(path: str | Path, key_column: str = "", value_column: str = ""):
    """A published table (CSV or JSON: structure -> accuracy) as a :class:`~unnas.references.Reference`."""
    from unnas.references import load_reference as read

    return read(path, key_column, value_column)


def agreement(score: Sequence[float], reference: Sequence[float], **options: Any) -> dict:
    """How well ``score`` ranks candidates compared with ``reference`` (one value per candidate, higher
    is better, missing values dropped pairwise): Spearman and Kendall with bootstrap intervals, a
    permutation p-value and top-k overlap (:func:`unnas.eval.correlation.agreement`)."""
    from unnas.eval.correlation import agreement as compute

    return compute(score, reference, **options)
