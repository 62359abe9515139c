"""Rank aggregations of the proxies stored by ``benchmarks/proxies.py --out``: agreement with NAS-Bench-Macro.

    python benchmarks/proxy_ensembles.py --out /tmp/vk7.jsonl \
        --ensemble logrank:vkdnw_single,jacob_cov,az_expressivity,az_trainability,flops \
        --ensemble logrank:az_expressivity,az_progressivity,az_trainability,flops

Reads the finished networks of a ``benchmarks/proxies.py`` run (JSON lines), combines the stored
proxy values of each ensemble with :mod:`unnas.eval.aggregate` (ranks among the networks that have
every part; ``log10`` first for log-scaled proxies, which changes no rank) and prints one JSON line:
per stored proxy, per ensemble and per part, Spearman's rho and Kendall's tau (``scipy.stats``) with
the table's ``mean_acc`` and the number of networks, and per stored proxy its median seconds per
network (an interrupted run's first networks give the same rows the finished run would print for
them). No proxy is computed again, with one exception that needs
no network weights: ``vkdnw_single`` is ``vkdnw`` plus the parameter-tensor count of the network
with its classifier (the two proxies read the same spectrum), so a run that stored ``vkdnw`` gives
``vkdnw_single`` by counting the tensors of each width-1 Macro network.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy import stats
from unnas.eval.aggregate import parse
from unnas.eval.proxies import scaled

from unnas.errors import UserError
from unnas.spec import ArchSpec, build

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT.parent / "shared" / "data" / "nas-bench-macro-cifar10.json"
CLASSIFIER_TENSORS = 2  # the Linear head vkdnw adds: weight and bias


def stored(path: Path) -> tuple[dict[str, dict[str, float | None]], dict[str, dict[str, float]]]:
    """arch -> proxy -> value (None where not finite), and arch -> proxy -> seconds, merged over the
    records of each network."""
    values: dict[str, dict] = {}
    seconds: dict[str, dict] = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        values.setdefault(r["arch"], {}).update(r["values"])
        seconds.setdefault(r["arch"], {}).update(r.get("seconds", {}))
    return values, seconds


def with_vkdnw_single(values: dict[str, dict]) -> None:
    for arch, v in values.items():
        if v.get("vkdnw") is not None and "vkdnw_single" not in v:
            tensors = len(list(build(ArchSpec("macro", {"arch": arch, "width": 1.0}), 3).parameters()))
            v["vkdnw_single"] = v["vkdnw"] + tensors + CLASSIFIER_TENSORS


def column(values: dict[str, dict], archs: list[str], name: str) -> np.ndarray:
    """One proxy's ranking values over ``archs`` (NaN where missing or not finite)."""
    out = [values[a].get(name) for a in archs]
    return np.array([np.nan if v is None else scaled(name, v) for v in out], dtype=float)


def agreement(xs: np.ndarray, accs: np.ndarray) -> dict:
    ok = ~np.isnan(xs)
    if ok.sum() < 3:
        return {"n": int(ok.sum())}
    return {"spearman": round(float(stats.spearmanr(xs[ok], accs[ok]).statistic), 4),
            "kendall": round(float(stats.kendalltau(xs[ok], accs[ok]).statistic), 4), "n": int(ok.sum())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="JSON lines written by benchmarks/proxies.py --out")
    p.add_argument("--ensemble", action="append", default=[], help="[RULE:]PART,PART,... (repeatable)")
    p.add_argument("--table", default=str(TABLE))
    a = p.parse_args(argv)
    try:
        ensembles = [parse(e) for e in a.ensemble]
    except UserError as e:
        print(e, file=sys.stderr)
        return 2
    path = Path(a.out)
    if not path.is_file():
        print(f"--out {a.out}: no such file (the JSON lines of a benchmarks/proxies.py run)", file=sys.stderr)
        return 2
    values, seconds = stored(path)
    with_vkdnw_single(values)
    table = json.loads(Path(a.table).read_text())
    archs = sorted(values)
    accs = np.array([table[s]["mean_acc"] for s in archs], dtype=float)
    out = {"benchmark": "proxy_ensembles", "source": str(path), "networks": len(archs), "columns": {}}
    for name in sorted({n for a in archs for n in values[a]}):
        out["columns"][name] = agreement(column(values, archs, name), accs)
        timed = [seconds[a][name] for a in archs if name in seconds[a]]
        if timed:
            out["columns"][name]["s_per_network_median"] = round(float(np.median(timed)), 3)
    for ens in ensembles:
        cols = [column(values, archs, part) for part in ens]
        out["columns"][ens.name] = agreement(ens.combine(cols), accs)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
