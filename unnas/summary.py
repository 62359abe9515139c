"""What a ranking run prints: one line per finished job, one per round, and at the end the
candidate table and the agreement of every score column (objectives, ensembles, rungs, proxies,
baselines and the probes that read labels) with the reference."""

from __future__ import annotations

import math

from rich.console import Console
from rich.table import Table

from unnas.analysis import fmt_corr
from unnas.eval.correlation import MIN_CANDIDATES
from unnas.jobs import PROBE_METRICS
from unnas.scores import BASELINES, REFERENCE, SUPERVISED, Ranking

MAX_TABLE_COLUMNS = 7  # score columns shown in the candidate table (every column is in ranking.json)


def _num(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.4g}"


def job_line(row, job=None) -> str:
    m = row.metrics or {}
    stop = f" @{job.stop}ep" if job is not None and job.stop else ""
    if row.status != "done":
        detail = row.error or ""
    elif "proxy_seconds" in m:
        detail = f"value {_num(m.get('score'))}"
    else:
        probes = "  ".join(f"{p} {m[k]:.3f} (uses labels)" for p, k in PROBE_METRICS.items() if k in m)
        detail = f"score {m.get('score', math.nan):.3f} (label-free)" + (f"  {probes}" if probes else "")
        if row.objective == SUPERVISED:
            detail = f"test acc {m.get('objective_acc', math.nan):.3f}"
    return (f"  {row.status:8s} {row.objective:12s} {row.arch_id} seed {row.seed}{stop} "
            f"({row.seconds or 0:.1f} s) {detail}")


def round_line(k: int, rungs, jobs, todo) -> str:
    where = f"round {k + 1}" + (f" (rung {k + 1}/{len(rungs)}: {rungs[k]} epochs)" if rungs and k < len(rungs) else "")
    return f"{where}: {len(jobs)} jobs; {len(jobs) - len(todo)} already stored, {len(todo)} to run"


def _cell(rk: Ranking, name: str, v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    col = rk.columns.get(name)
    if col is None or col.kind in ("objective", "probe", "rung", "supervised") or name == REFERENCE:
        if col is not None and col.kind == "objective" and v > 1:  # a successive-halving order: rung + score
            return f"r{int(v)}:{100 * (v - int(v)):.1f}"
        return f"{100 * v:.1f}"
    if col.log_scale:  # ranked as log10 (unnas.analysis.log_scaled)
        return f"1e{v:.2f}"
    return _num(v)


def chance_verdict(rk: Ranking) -> str:
    """One line: does the 95% interval of the ranking column's Spearman rho (or, when that column
    reads labels, the first label-free objective's) exclude 0? Empty without an agreement."""
    name = rk.primary if rk.primary in rk.columns and not rk.columns[rk.primary].uses_labels else \
        next(iter(rk.objectives), "")
    ag = rk.agreement.get(name)
    if not ag:
        return ""
    sp = ag["spearman"]
    v, lo, hi = sp["value"], sp["ci_low"], sp["ci_high"]
    head = f"{name} (label-free) against {rk.reference_name}: Spearman rho {fmt_corr(sp)} over {ag['n']} candidates"
    if v is None or not math.isfinite(v) or lo is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{head}: no interval, so this run cannot tell its ranking from chance"
    if lo > 0 or hi < 0:
        return (f"{head}: the interval excludes 0, so the ranking {'agrees' if lo > 0 else 'disagrees'} with "
                f"{rk.reference_name} beyond chance")
    return (f"{head}: the interval includes 0, so this run cannot tell its ranking from chance "
            f"(more candidates, --num-archs, or seeds, --seeds, narrow it)")


def print_ranking(rk: Ranking, console: Console) -> None:
    # the trained-network scores are in the agreement table (and ranking.json), not in this one
    shown = [n for n in rk.columns if n not in BASELINES and (rk.columns[n].kind != "trained" or n == rk.primary)]
    shown = shown[:MAX_TABLE_COLUMNS]
    t = Table(title=f"ranking (best {rk.primary or 'reference'} first)")
    t.add_column("#", justify="right")
    t.add_column("arch_id")
    t.add_column("params", justify="right")
    t.add_column("MFLOPs", justify="right")
    for n in shown:
        t.add_column(n + (" *" if rk.columns[n].uses_labels else ""), justify="right")
    ref = rk.reference_name if rk.reference_name != SUPERVISED else "supervised acc *"
    t.add_column(ref, justify="right")
    ref_key = SUPERVISED if rk.reference_name == SUPERVISED else REFERENCE
    for i, r in enumerate(rk.table(), 1):
        t.add_row(str(i), r["arch_id"], f"{r.get('params') or 0:,}", f"{(r.get('flops') or 0) / 1e6:.1f}",
                  *[_cell(rk, n, r.get(n)) for n in shown], _cell(rk, REFERENCE, r.get(ref_key)))
    console.print(t)
    if any(rk.columns[n].uses_labels for n in shown) or rk.reference_name == SUPERVISED:
        console.print("* reads labels (a probe or the supervised jobs); every other column is label-free")
    if rk.agreement:
        a = Table(title=f"agreement with {rk.reference_name} (95% bootstrap CI)")
        for h in ("score", "kind", "labels", "n", "Spearman rho", "Kendall tau", "top-1 pick"):
            a.add_column(h, justify="left" if h in ("score", "kind", "labels") else "right")
        for name, ag in rk.agreement.items():
            col = rk.columns[name]
            a.add_row(name, col.kind, "uses labels" if col.uses_labels else "label-free", str(ag["n"]),
                      fmt_corr(ag["spearman"]), fmt_corr(ag["kendall"]),
                      _cell(rk, REFERENCE, ag.get("top1_reference")))
        console.print(a)
        few = min(ag["n"] for ag in rk.agreement.values())
        if few < MIN_CANDIDATES:
            console.print(f"[yellow]warning: agreement over {few} candidate(s), fewer than {MIN_CANDIDATES}: the "
                          "correlations and their intervals mean nothing (rank more candidates, --num-archs)[/]")
        last = {name: ag.get("n_nonfinite", 0) for name, ag in rk.agreement.items() if ag.get("n_nonfinite")}
        for name, k in last.items():
            console.print(f"{name}: {k} candidate(s) with a non-finite value, ranked last (tied)")
        verdict = chance_verdict(rk)
        if verdict:
            console.print(verdict, markup=False)
        best = next(iter(rk.agreement.values()), {}).get("best_reference")
        if best is not None and math.isfinite(best):
            console.print(f"best {rk.reference_name} accuracy in the population: {100 * best:.1f}")
    if rk.failed:
        console.print(f"[yellow]{len(rk.failed)} job(s) did not finish:[/]")
        for r in rk.failed:
            console.print(f"  {r.status} {r.objective} {r.arch_id} seed {r.seed}: {r.error}")
