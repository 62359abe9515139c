"""Plots and the self-contained HTML report of one or more ranking runs.

``unnas report RUN_DIR [RUN_DIR ...] [--out DIR] [--wandb MODE]`` reads the run folders'
stores, writes one PNG per plot, ``report.json`` (every number shown) and ``report.html`` (images
embedded as base64 PNG, so the file can be mailed or attached on its own). Several run folders
make one combined report, e.g. one run per generator. ``--wandb offline|online`` replays the runs'
JSON-lines logs and logs the report's tables and images to Weights & Biases.

The plots are drawn by :mod:`unnas.plots`; a search run's folder (``search.json``) adds its
trajectory plot.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from scipy.stats import rankdata

from unnas.analysis import (
    Analysis,
    analyze,
    curve_columns,
    fmt_corr,
    load_run,
)
from unnas.errors import UserError
from unnas.outputs import write_json
from unnas.plots import (
    agreement_plot,
    complexity_plot,
    edf_plot,
    random_experiment_plot,
    reference_label,
    scatter,
    trajectory_plot,
)
from unnas.report_wandb import to_wandb, wandb_tables
from unnas.runner import SUPERVISED
from unnas.scores import REFERENCE


def _file_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.@" else "_" for c in name)


def make_plots(an: Analysis, out_dir: Path) -> list[tuple[str, Path, str]]:
    """Write every plot as a PNG under ``out_dir``; returns ``(key, path, caption)`` per plot."""
    rk = an.ranking
    ref = reference_label(rk)
    plots = []
    if rk.reference:
        for o in curve_columns(rk):
            p = scatter(rk, o, out_dir / f"scatter_{_file_name(o)}.png")
            plots.append((f"scatter_{o}", p, f"{o} ({rk.columns[o].kind}) vs {ref}, one point per candidate "
                                             f"(mean over seeds)."))
    pops = an.populations
    if pops["generator"]:
        p = edf_plot(pops["generator"], out_dir / "edf_generator.png", f"error EDF per generator ({ref})",
                     "test error (%)")
        plots.append(("edf_generator", p, f"Error EDF per generator: fraction of candidates with error "
                                          f"(100 - {ref}) at most x; right: each params bin weighted equally (NDS)."))
    if pops["objective"]:
        p = edf_plot(pops["objective"], out_dir / "edf_objective.png",
                     f"error EDF per objective (100 - label-free score; {ref}: its error)", "error (%)",
                     normalize_by=None)
        plots.append(("edf_objective", p, "EDF of each objective's label-free error (100 - its held-out score) over the same "
                                          "candidates, with the supervised test error for reference."))
    if an.curves:
        p = random_experiment_plot(an.curves, out_dir / "random_experiment.png", ref)
        plots.append(("random_experiment", p, "Random experiment (UnNAS): sample m candidates, keep the one with "
                                              f"the best score, report its {ref}."))
    if any(c.kind == "trained" for c in rk.columns.values()) and an.comparison:
        p = agreement_plot(an.comparison, out_dir / "agreement.png", ref)
        plots.append(("agreement", p, "Spearman rho (95% bootstrap CI) of every column with the "
                                      f"{ref}: objectives, the label-free scores of the trained networks "
                                      "(OBJECTIVE/SCORE), proxies, baselines; hollow points read labels."))
    if any(c.get("params") is not None for c in rk.complexity.values()):
        p = complexity_plot(rk, out_dir / "complexity.png", an.comparison)
        plots.append(("complexity", p, "Complexity vs accuracy. The panel titles give the agreement of the "
                                       f"complexity measure alone with the {ref} (no training)."))
    for run in an.runs:  # a search run: its trajectory
        search = run.path / "search.json"
        if search.is_file():
            key = "search_trajectory" if len(an.runs) == 1 else f"search_trajectory_{run.name}"
            p = trajectory_plot(json.loads(search.read_text()), out_dir / f"{key}.png")
            plots.append((key, p, f"Search trajectory of {run.name}: the best score so far against the candidates "
                                  "evaluated and against job time."))
    return plots


# ------------------------------------------------------------------ HTML
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1180px;
color:#222;padding:0 16px;line-height:1.4}
h1{font-size:1.5em;margin-bottom:4px}h2{font-size:1.2em;margin-top:32px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:right;vertical-align:top}td{white-space:nowrap}
th{background:#f3f3f3}td.l,th.l{text-align:left}tr.best td{background:#eaf6ea;font-weight:600}
tr.baseline td{color:#666;font-style:italic}.tw{overflow-x:auto}
figure{display:inline-block;margin:8px 12px 16px 0;vertical-align:top}
figure img{max-width:100%;border:1px solid #eee}
figure.half{width:48%;margin-right:1%}figure.half img{width:100%}
figcaption{font-size:12px;color:#555;max-width:680px}
pre{background:#f7f7f7;padding:8px;overflow:auto;font-size:12px}
.warn{background:#fff4e5;border-left:4px solid #f0a020;padding:6px 10px;margin:8px 0}
.muted{color:#666;font-size:13px}td.err{white-space:pre-wrap;min-width:320px;text-align:left;font-family:monospace;font-size:12px}
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _pct(v: Any) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * float(v):.2f}"


def _num(v: Any, fmt: str = "+.3f") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(float(v), fmt)


def _table(head: list[str], rows: Iterable[list], left: int = 1, row_cls: list[str] | None = None) -> str:
    """HTML table. Cells are escaped strings, or ``(text, css_class)``; the first ``left`` columns
    are left-aligned."""
    th = "".join(f'<th class="l">{h}</th>' if i < left else f"<th>{h}</th>" for i, h in enumerate(head))
    body = []
    for n, r in enumerate(rows):
        cls = f' class="{row_cls[n]}"' if row_cls and row_cls[n] else ""
        tds = []
        for i, c in enumerate(r):
            text, css = c if isinstance(c, tuple) else (c, "l" if i < left else "")
            tds.append(f'<td class="{css}">{text}</td>' if css else f"<td>{text}</td>")
        body.append(f"<tr{cls}>{''.join(tds)}</tr>")
    return f'<div class="tw"><table><thead><tr>{th}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _comparison_html(an: Analysis) -> str:
    if not an.comparison:
        return '<p class="muted">No reference (supervised jobs or a table): nothing to compare with.</p>'
    ks_ = sorted({t["spec"] for r in an.comparison for t in r["agreement"]["top_k"]}, key=str)
    head = ["score", "kind", "labels", "n", "Spearman rho [95% CI]", "Kendall tau [95% CI]", "Pearson r [95% CI]",
            "perm. p (rho)", *[f"top-{_e(k if isinstance(k, int) else f'{100 * k:g}%')} overlap" for k in ks_],
            "pairwise acc.", "seed-to-seed rho"]
    rows, cls = [], []
    for r in an.comparison:
        ag = r["agreement"]
        tk = {t["spec"]: t for t in ag["top_k"]}
        name = _e(r["name"]) + (" (no training)" if r["kind"] in ("baseline", "proxy") else "")
        labels = "uses labels" if r.get("uses_labels") else "label-free"
        rows.append([name, _e(r["kind"]), labels, str(ag["n"]), _e(fmt_corr(ag["spearman"])), _e(fmt_corr(ag["kendall"])),
                     _e(fmt_corr(ag["pearson"])), _num(ag["spearman"]["p_perm"], ".3g"),
                     *[(_num(tk[k]["overlap"], ".2f") + f" (k={tk[k]['k']})") if k in tk else "-" for k in ks_],
                     _num(ag["pairwise_accuracy"], ".3f"), _num(r["noise_ceiling"])])
        cls.append("best" if r["name"] == an.best and r["kind"] == "objective" else
                   "baseline" if r["kind"] in ("baseline", "probe", "supervised") else "")
    best = (f"<p>Best-agreeing objective: <b>{_e(an.best)}</b> (highest Spearman rho).</p>" if an.best else
            "<p>No objective has a defined rank correlation.</p>")
    if an.differences:
        items = []
        for d in an.differences:
            if math.isnan(d["value"]):
                items.append(f"<li>{_e(d['a'])} vs {_e(d['b'])}: not defined (n={d['n']})</li>")
                continue
            verdict = ("the interval excludes 0: the data separate the two" if d["separated"] else
                       "the interval includes 0: the data do not separate the two")
            items.append(f"<li>{_e(d['a'])} &minus; {_e(d['b'])}: &Delta;rho {d['value']:+.3f} "
                         f"[{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] over n={d['n']} candidates; {verdict}.</li>")
        best += ("<p>Difference in Spearman rho, paired bootstrap over candidates (95% CI):</p><ul>"
                 + "".join(items) + "</ul>")
    sup_nc = an.ranking.noise_ceiling.get(SUPERVISED, math.nan)
    note = (f'<p class="muted">Agreement of each ranking with the reference ({_e(reference_label(an.ranking))}) '
            "over the candidates where both are known (n). Label-free columns read no label; probe and supervised "
            "columns do. CIs: percentile bootstrap over candidates; p: permutation test of rho; "
            "top-k overlap: shared fraction of the two top-k sets; pairwise acc.: fraction of candidate pairs "
            "ordered alike; seed-to-seed rho: rank agreement between training seeds of the same objective "
            "(the noise ceiling). Baseline rows rank by the complexity measure alone, proxy rows by a zero-cost score "
            "of the untrained network"
            + (f"; supervised seed-to-seed rho {sup_nc:+.3f}" if sup_nc == sup_nc else "") + ".</p>")
    out = best + _table(head, rows, row_cls=cls) + note
    if an.by_generator:
        objs = an.ranking.objectives
        rows = [[_e(g), *[f"{_e(fmt_corr(ag[o]['spearman']))} (n={ag[o]['n']})" for o in objs]]
                for g, ag in an.by_generator.items()]
        out += "<h3>Spearman rho within each generator</h3>" + _table(["generator", *map(_e, objs)], rows)
    return out


def _ranking_html(an: Analysis) -> str:
    rk = an.ranking
    if not rk.arch_ids:
        return '<p class="muted">No candidates.</p>'
    objs = [n for n in rk.columns if rk.columns[n].kind != "baseline"]
    key = an.best or rk.primary or REFERENCE
    cols = {o: rk.column(o) for o in [*objs, REFERENCE]}
    ranks = {}
    for o, v in cols.items():
        ok = np.isfinite(v)
        r = np.full(v.size, np.nan)
        if ok.any():
            r[ok] = rankdata(-v[ok], method="min")
        ranks[o] = r
    order = sorted(range(len(rk.arch_ids)), key=lambda i: (-cols[key][i] if np.isfinite(cols[key][i]) else math.inf,
                                                           rk.arch_ids[i]))
    head = ["#", "arch_id", "generator", "params", "MFLOPs",
            *[f"{_e(o)}{' (uses labels)' if rk.columns[o].uses_labels else ''}{' %' if o in rk.percent else ''} (rank)"
              for o in objs], f"{_e(reference_label(rk))} % (rank)"]
    rows = []
    for pos, i in enumerate(order, 1):
        a = rk.arch_ids[i]
        cx = rk.complexity.get(a, {})
        cells = [str(pos), f'<span title="{_e(rk.specs.get(a, ""))}">{_e(a)}</span>', _e(rk.generators.get(a, ""))]
        cells += [f"{cx['params']:,}" if cx.get("params") is not None else "-",
                  f"{cx['flops'] / 1e6:.2f}" if cx.get("flops") is not None else "-"]
        for o in [*objs, REFERENCE]:
            v, r = cols[o][i], ranks[o][i]
            cells.append((_pct(v) if o in rk.percent else _num(v, ".4g")) + ("" if math.isnan(r) else f" ({int(r)})"))
        rows.append(cells)
    return (f'<p class="muted">Sorted by {_e(key)}; ranks: 1 = best. Scores are means over seeds. '
            f"Hover an arch_id for its spec.</p>" + _table(head, rows, left=3))


def _failed_html(an: Analysis) -> str:
    failed = an.ranking.failed
    if not failed:
        return "<p>Every job finished.</p>"
    rows = [[_e(r.status), _e(r.objective), _e(r.arch_id), _e(r.generator), str(r.seed),
             _num(r.seconds, ".1f"), (_e(r.error or "(no message)"), "err")] for r in failed]
    head = ["status", "objective", "arch_id", "generator", "seed", "seconds", "reason"]
    return _table(head, rows, left=4)


def _ks_html(an: Analysis) -> str:
    if not an.ks_generator:
        return ""
    rows = [[_e(k["a"]), _e(k["b"]), f"{k['D']:.3f}", f"{k['p_value']:.3g}", f"{k['n_a']:g}", f"{k['n_b']:g}"]
            for k in an.ks_generator]
    return (f"<h3>Kolmogorov-Smirnov between generators ({_e(reference_label(an.ranking))})</h3>"
            + _table(["A", "B", "D = sup|F_A - F_B|", "p", "n_A", "n_B"], rows, left=2))


def _header(an: Analysis) -> str:
    rk = an.ranking
    names = ", ".join(r.name for r in an.runs)
    st = ", ".join(f"{v} {k}" for k, v in an.status.items() if v)
    data = sorted({str((r.config.get("data") or {}).get("name", "?")) for r in an.runs})
    lines = [f"<h1>unnas ranking report: {_e(names)}</h1>",
             f'<p class="muted">generated {_e(time.strftime("%Y-%m-%d %H:%M:%S"))} from '
             f"{_e(', '.join(str(r.path) for r in an.runs))}</p>",
             f"<p>{len(rk.arch_ids)} candidates; generators: {_e(', '.join(rk.generator_names) or '-')}; "
             f"label-free objectives: {_e(', '.join(rk.objectives) or '-')}; data: {_e(', '.join(data))}; "
             f"ranked by: {_e(rk.primary or '-')} ({_e(an.score_label)}); reference: {_e(reference_label(rk))}; "
             f"jobs: {_e(st or 'none')}.</p>"]
    lines += [f'<div class="warn">{_e(w)}</div>' for w in an.warnings]
    return "\n".join(lines)


def _config_html(an: Analysis) -> str:
    parts = []
    for r in an.runs:
        argv = [e.get("argv") for e in r.events if e.get("event") == "run_start" and e.get("argv")]
        cmd = f"<p class=\"muted\">command: <code>{_e(' '.join(map(str, argv[-1])))}</code></p>" if argv else ""
        parts.append(f"<details open><summary>{_e(r.name)}</summary>{cmd}"
                     f"<pre>{_e(r.config_text or '(no config.yaml)')}</pre></details>")
    return "".join(parts)


def render_html(an: Analysis, plots: list[tuple[str, Path, str]]) -> str:
    half = ' class="half"'
    figs = {k: f"<figure{half if k.startswith('scatter_') else ''}>{_img(p, k)}"
               f"<figcaption>{_e(c)}</figcaption></figure>" for k, p, c in plots}
    sc = "".join(v for k, v in figs.items() if k.startswith("scatter_"))
    sections = [
        _header(an),
        "<h2>Objectives compared</h2>" + _comparison_html(an),
        "<h2>Scores vs the reference</h2>" + (sc or '<p class="muted">Not available.</p>'),
        "<h2>Random experiment</h2>" + figs.get("random_experiment", '<p class="muted">Not available.</p>'),
        "<h2>Distribution estimates (EDFs)</h2>" + figs.get("edf_generator", "") + figs.get("edf_objective", "")
        + _ks_html(an),
        "<h2>Complexity vs accuracy</h2>" + figs.get("complexity", '<p class="muted">No complexity recorded.</p>'),
        *(["<h2>Search trajectory</h2>" + "".join(v for k, v in figs.items() if k.startswith("search_trajectory"))]
          if any(k.startswith("search_trajectory") for k in figs) else []),
        "<h2>Ranking</h2>" + _ranking_html(an),
        "<h2>Failed candidates</h2>" + _failed_html(an),
        "<h2>Configuration</h2>" + _config_html(an),
    ]
    title = "unnas report: " + ", ".join(r.name for r in an.runs)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(sections) + "\n</body></html>\n")


# ------------------------------------------------------------------ entry points
def default_out_dir(run_dirs: list[Path]) -> Path:
    """The run folder itself for one run; ``<parent of the first>/report-<names>`` for several."""
    if len(run_dirs) == 1:
        return run_dirs[0]
    names = "+".join(p.name for p in run_dirs)
    if len(names) > 80:
        names = names[:60] + "-" + hashlib.sha1(names.encode()).hexdigest()[:8]
    return run_dirs[0].parent / f"report-{names}"


def write_report(run_dirs: list[Path], out_dir: Path | None = None, wandb_mode: str = "disabled", *,
                 tracker: Any = None, n_boot: int = 1000, n_draws: int = 1000, seed: int = 0,
                 wandb_project: str | None = None) -> Path:
    """Analyse the run folders and write the PNGs, ``report.json`` and ``report.html`` into
    ``out_dir`` (default: :func:`default_out_dir`). Returns the path of ``report.html``.

    ``tracker``: an open :class:`unnas.tracking.Tracker` (or anything with ``table(key, columns,
    rows)`` and ``image(key, path)``) that receives the tables and plots, e.g. the ranking run's own
    W&B run. ``wandb_mode`` ``offline`` / ``online``: also replay everything into a new W&B run.
    """
    from unnas.tracking import WANDB_MODES

    if wandb_mode not in WANDB_MODES:
        raise UserError("--wandb-mode", wandb_mode, WANDB_MODES)
    run_dirs = [Path(p) for p in run_dirs]
    runs = [load_run(p) for p in run_dirs]
    an = analyze(runs, n_boot=n_boot, n_draws=n_draws, seed=seed)
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir(run_dirs)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError("--out", str(out_dir), "a writable folder", message=f"cannot create ({e.strerror})") from None
    plots = make_plots(an, out_dir)
    write_json(out_dir / "report.json", an.to_json())
    page = out_dir / "report.html"
    tmp = page.with_name(f".report.html.tmp{os.getpid()}")
    tmp.write_text(render_html(an, plots), encoding="utf-8")
    os.replace(tmp, page)
    if tracker is not None:
        for key, (cols, rows) in wandb_tables(an).items():
            tracker.table(f"report/{key}", cols, rows)
        for key, path, _ in plots:
            tracker.image(f"report/{key}", path)
    if wandb_mode != "disabled":
        to_wandb(an, plots, out_dir, wandb_mode, project=wandb_project)
    return page


def main(argv: list[str] | None = None) -> int:
    """``python -m unnas.report``: the same command as ``unnas report`` (:mod:`unnas.report_cli`)."""
    from unnas.report_cli import main as report_main

    return report_main(argv)


if __name__ == "__main__":
    sys.exit(main())
