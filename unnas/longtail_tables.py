"""The tables of a decoupled long-tail run: per-method accuracies by class group, the agreement
of the methods' rankings over architectures, the CSV rows and JSON (non-finite numbers as null)."""

from __future__ import annotations

import math

import numpy as np

from unnas.eval.decoupled import GROUPS, METHODS

METHOD_LABELS = {"joint": "Joint", "ncm": "NCM", "crt": "cRT", "tau_norm": "tau-norm", "lws": "LWS"}

def _pct(v: float) -> str:
    return "  -  " if v is None or not math.isfinite(v) else f"{100 * v:5.1f}"


def format_table(res: dict) -> str:
    """Many / Medium / Few / All top-1 (%) per method, plus the thresholds and group sizes."""
    th, gs = res["thresholds"], res["group_sizes"]
    head = (f"Many (n>{th['many']:g}, {gs['many']} cl.)", f"Medium ({gs['medium']} cl.)",
            f"Few (n<{th['few']:g}, {gs['few']} cl.)", "All")
    w0 = 10
    lines = [f"{'method':<{w0}}" + "".join(f"{h:>{max(len(h), 6) + 2}}" for h in head) + "  notes"]
    for m, r in res["methods"].items():
        note = ""
        if m == "tau_norm":
            note = f"tau={r['tau']:g}"
        elif m == "joint":
            note = res.get("joint_source", "")
        row = f"{METHOD_LABELS.get(m, m):<{w0}}"
        for h, g in zip(head, GROUPS):
            row += f"{_pct(r[g]):>{max(len(h), 6) + 2}}"
        lines.append(row + "  " + note)
    lines.append(f"thresholds: {th['rule']}")
    return "\n".join(lines)


def method_rankings(per_arch: dict[str, dict], metric: str = "all") -> dict:
    """How the architecture ranking changes between methods: Spearman matrix over architectures
    of each method's ``metric`` accuracy, and each method's agreement with the joint ranking."""
    from scipy import stats

    from unnas.eval.correlation import agreement

    archs = list(per_arch)
    methods = [m for m in METHODS if all(m in per_arch[a]["methods"] for a in archs)]
    vals = {m: [per_arch[a]["methods"][m][metric] for a in archs] for m in methods}
    matrix: dict[str, dict[str, float | None]] = {}
    for m1 in methods:
        matrix[m1] = {}
        for m2 in methods:
            x, y = np.asarray(vals[m1], float), np.asarray(vals[m2], float)
            ok = np.isfinite(x) & np.isfinite(y)
            if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
                matrix[m1][m2] = None
            else:
                matrix[m1][m2] = float(stats.spearmanr(x[ok], y[ok]).statistic)
    vs_joint = {}
    if "joint" in vals and len(archs) >= 3:
        for m in methods:
            if m != "joint":
                try:
                    a = agreement(vals[m], vals["joint"], n_boot=500, n_perm=500, seed=0, top_k=(1,))
                    vs_joint[m] = {"spearman": a["spearman"], "kendall": a["kendall"]}
                except (ValueError, ZeroDivisionError) as e:
                    vs_joint[m] = {"error": str(e)}
    return {"metric": metric, "archs": archs, "values": vals, "spearman": matrix, "vs_joint": vs_joint}


def format_matrix(rk: dict) -> str:
    ms = list(rk["spearman"])
    lines = [f"Spearman between methods over {len(rk['archs'])} architectures ({rk['metric']} top-1):",
             f"{'':<10}" + "".join(f"{METHOD_LABELS.get(m, m):>10}" for m in ms)]
    for m1 in ms:
        cells = "".join(f"{'-' if v is None else f'{v:.2f}':>10}" for v in (rk["spearman"][m1][m2] for m2 in ms))
        lines.append(f"{METHOD_LABELS.get(m1, m1):<10}" + cells)
    return "\n".join(lines)


def csv_rows(per_arch: dict[str, dict]) -> list[dict]:
    rows = []
    for arch_id, res in per_arch.items():
        for m, r in res["methods"].items():
            rows.append({"arch_id": arch_id, "method": m, "many": r["many"], "medium": r["medium"], "few": r["few"],
                         "all": r["all"], "val_all": r["val_all"], "tau": r.get("tau", ""),
                         "many_threshold": res["thresholds"]["many"], "few_threshold": res["thresholds"]["few"],
                         "joint_source": res.get("joint_source", "")})
    return rows


def dumps(obj) -> str:
    from unnas.outputs import dumps as strict

    return strict(obj)
