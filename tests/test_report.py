"""The HTML report on a synthetic store (no training): files, embedded images, tables, CLI, W&B
replay, and rendering in headless Chromium when it is installed."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unnas import config as config_mod
from unnas.analysis import analyze, load_run
from unnas.config import Config, ModelConfig, RunConfig
from unnas.report import default_out_dir, main, write_report
from unnas.store import JobRow, Store

PLOTS = ("scatter_rotation", "scatter_jigsaw", "edf_generator", "edf_objective", "random_experiment", "complexity")


def make_run(run_dir: Path, generator: str = "randwire-ws", n: int = 10, seeds: int = 2,
             objectives: tuple[str, ...] = ("rotation", "jigsaw"), seed: int = 0, failures: bool = True) -> Path:
    """A finished run folder without training: ``config.yaml``, ``store.sqlite`` and ``log.jsonl``.

    Supervised accuracy grows with the candidate index; ``rotation`` follows it (plus small seed
    noise), ``jigsaw`` is unrelated noise. With ``failures`` one extra candidate fails its rotation
    job and diverges in jigsaw."""
    rng = np.random.default_rng(seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = Config(model=ModelConfig(generator=generator), run=RunConfig(pretext=",".join(objectives), num_archs=n,
                                                                       seeds=seeds, name=run_dir.name))
    (run_dir / "config.yaml").write_text(config_mod.to_yaml(cfg))
    events = [{"time": 0.0, "event": "run_start", "jobs": n * seeds * (len(objectives) + 1), "todo": 0,
               "argv": ["python", "-m", "unnas.rank", "--generator", generator]}]
    with Store(run_dir / "store.sqlite") as store:
        for i in range(n):
            arch = f"{generator[:2]}{i:04d}"
            spec = json.dumps({"generator": generator, "params": {"i": i}, "seed": i})
            params = int(1000 * 2 ** (i % 7) + 37 * i)
            sup = 0.5 + 0.4 * i / n + (0.01 if generator != "randwire-ws" else 0.0)
            for s in range(seeds):
                vals = {"supervised": sup + rng.normal(0, 0.002), "rotation": 0.3 + 0.3 * i / n + rng.normal(0, 0.005),
                        "jigsaw": rng.uniform(0.2, 0.6)}
                for obj in (*objectives, "supervised"):
                    v = float(vals.get(obj, rng.uniform(0.2, 0.6)))
                    m = {"params": params, "flops": 50 * params, "score": v, "knn_acc": v,
                         "objective_acc": v, "objective_loss": 1 - v, "steps": 10}
                    row = JobRow(f"{arch}-{obj}-{s}", arch, spec, generator, obj, s, "done", m, seconds=1.5)
                    store.put(row)
                    events.append({"time": 1.0, "event": "job", "job_id": row.job_id, "arch_id": arch,
                                   "objective": obj, "seed": s, "status": "done", "metrics": m, "seconds": 1.5})
        if failures:
            arch = f"{generator[:2]}fail"
            spec = json.dumps({"generator": generator, "params": {"i": -1}, "seed": 99})
            store.put(JobRow(f"{arch}-rot", arch, spec, generator, "rotation", 0, "failed", {},
                             seconds=0.2, error="RuntimeError: <shape> mismatch & co (layers.py:12)"))
            store.put(JobRow(f"{arch}-jig", arch, spec, generator, "jigsaw" if "jigsaw" in objectives else
                             objectives[0], 0, "diverged", {"diverged_step": 3}, seconds=0.3,
                             error="loss became nan at step 3"))
            store.put(JobRow(f"{arch}-sup", arch, spec, generator, "supervised", 0, "done",
                             {"params": 999, "flops": 49950, "score": 0.4, "objective_acc": 0.4}, seconds=0.3))
        store.export_csv()
    events.append({"time": 2.0, "event": "summary", "seconds": 12.5})
    (run_dir / "log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events) + "{not json\n")
    return run_dir


class _Images(HTMLParser):
    """Collects ``<img>`` sources, ``<h2>`` titles and table cell texts of a page."""

    def __init__(self):
        super().__init__()
        self.images: list[tuple[str, str]] = []
        self.h2: list[str] = []
        self.cells: list[str] = []
        self._tag = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append((a.get("alt", ""), a.get("src", "")))
        self._tag = tag

    def handle_endtag(self, tag):
        self._tag = None

    def handle_data(self, data):
        if self._tag == "h2":
            self.h2.append(data)
        elif self._tag in ("td", "b", "span"):
            self.cells.append(data)


def _decode_images(page: Path) -> tuple[_Images, dict[str, Image.Image]]:
    parser = _Images()
    parser.feed(page.read_text(encoding="utf-8"))
    out = {}
    for alt, src in parser.images:
        assert src.startswith("data:image/png;base64,"), src[:40]  # self-contained: nothing external
        raw = base64.b64decode(src.split(",", 1)[1], validate=True)
        Image.open(io.BytesIO(raw)).verify()
        img = Image.open(io.BytesIO(raw))
        img.load()
        out[alt] = img
    return parser, out


class Recorder:
    """Stands in for :class:`unnas.tracking.Tracker`: records what the report logs."""

    def __init__(self):
        self.tables, self.images = {}, {}

    def table(self, key, cols, rows):
        self.tables[key] = (cols, rows)

    def image(self, key, path):
        self.images[key] = Path(path)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """One report over a synthetic run, with the figures it saved and what a tracker received."""
    import matplotlib.figure

    run = make_run(tmp_path_factory.mktemp("runs") / "ws-run")
    figures, orig = {}, matplotlib.figure.Figure.savefig

    def spy(self, path, *a, **k):
        figures[Path(path).stem] = self
        return orig(self, path, *a, **k)

    matplotlib.figure.Figure.savefig = spy
    try:
        rec = Recorder()
        page = write_report([run], n_boot=200, n_draws=200, tracker=rec)
    finally:
        matplotlib.figure.Figure.savefig = orig
    return run, page, figures, rec


def test_report_files_and_embedded_images(report):
    run, page, _, _ = report
    assert page == run / "report.html"
    parser, images = _decode_images(page)
    assert sorted(images) == sorted(PLOTS)
    for key, img in images.items():
        assert img.format == "PNG" and img.width > 300 and img.height > 300
        assert len(img.convert("L").getcolors(1 << 16) or []) > 20, f"{key} looks blank"
        on_disk = Image.open(run / f"{key}.png")
        assert on_disk.size == img.size  # the same PNG as the file next to the report
    assert parser.h2 == ["Objectives compared", "Scores vs the reference", "Random experiment",
                         "Distribution estimates (EDFs)", "Complexity vs accuracy", "Ranking",
                         "Failed candidates", "Configuration"]
    text = page.read_text()
    assert "http://" not in text and "https://" not in text and "<script" not in text
    # the failed candidates with their reasons, HTML-escaped
    assert "RuntimeError: &lt;shape&gt; mismatch &amp; co (layers.py:12)" in text
    assert "loss became nan at step 3" in text and "diverged" in parser.cells
    # config and the command from log.jsonl
    assert "pretext: rotation,jigsaw" in text and "python -m unnas.rank --generator randwire-ws" in text


def test_report_numbers_match_report_json(report):
    run, page, _, _ = report
    data = json.loads((run / "report.json").read_text())
    assert data["best_objective"] == "rotation"  # rotation follows the supervised order, jigsaw is noise
    comp = {r["name"]: r for r in data["comparison"]}
    assert set(comp) == {"rotation", "jigsaw", "params", "flops"}
    assert comp["rotation"]["agreement"]["n"] == 10  # the failed candidate has no rotation score
    assert comp["jigsaw"]["agreement"]["n"] == 10  # ... and a diverged jigsaw job
    assert comp["params"]["agreement"]["n"] == 11
    text = page.read_text()
    rot = comp["rotation"]["agreement"]["spearman"]
    cell = f"{rot['value']:+.3f} [{rot['ci_low']:+.3f}, {rot['ci_high']:+.3f}]"
    assert re.search(r'<tr class="best"><td class="l">rotation</td><td>objective</td><td>label-free</td><td>10</td><td>'
                     + re.escape(cell), text)
    assert data["status"] == {"done": 61, "failed": 1, "diverged": 1, "timeout": 0}
    (diff,) = data["rho_differences"]
    assert (diff["a"], diff["b"], diff["n"]) == ("rotation", "jigsaw", 10) and diff["separated"]
    assert f"rotation &minus; jigsaw: &Delta;rho {diff['value']:+.3f}" in text
    assert "the data separate the two" in text
    # ranking table: 11 candidates, sorted by the best objective, the failed one last
    rows = re.findall(r'<tr><td class="l">(\d+)</td><td class="l"><span title="[^"]*">([^<]+)</span>', text)
    assert [int(r[0]) for r in rows] == list(range(1, 12))
    assert [r[1] for r in rows] == [f"ra{i:04d}" for i in range(9, -1, -1)] + ["rafail"]


def test_png_axes_labelled(report):
    """Every axis of every plot is labelled; legends name what they show."""
    _, _, figs, _ = report
    assert sorted(figs) == sorted(PLOTS)
    for fig in figs.values():
        for ax in fig.axes:
            assert ax.get_xlabel() and ax.get_ylabel()
    s = figs["scatter_rotation"].axes[0]
    assert s.get_xlabel() == "rotation label-free held-out score (%)"
    assert s.get_ylabel() == "supervised test accuracy (%)"
    assert "Spearman rho" in s.get_title() and "Kendall tau" in s.get_title()
    r = figs["random_experiment"].axes[0]
    assert [t.get_text() for t in r.get_legend().get_texts()] == [
        "best by supervised test accuracy (oracle)", "best by rotation",
        "best by jigsaw", "random pick (population mean)"]
    assert "n=10 candidates" in r.get_title()  # the failed candidate is left out of every curve
    e = figs["edf_generator"]
    assert e.axes[0].get_ylabel() == "cumulative fraction of models" and e.axes[1].get_ylabel() == "normalized EDF"
    assert [t.get_text() for t in e.axes[0].get_legend().get_texts()] == ["randwire-ws (n=11)"]
    o = figs["edf_objective"].axes[0]
    assert [t.get_text() for t in o.get_legend().get_texts()] == ["rotation (n=10)", "jigsaw (n=10)",
                                                                   "supervised (n=11)"]
    c = figs["complexity"]
    assert [a.get_xscale() for a in c.axes] == ["log", "log"]
    assert [t.get_text() for t in c.legends[0].get_texts()] == [
        "supervised test accuracy", "rotation label-free held-out score", "jigsaw label-free held-out score"]


def test_combined_report_over_two_generators(tmp_path):
    a = make_run(tmp_path / "ws", "randwire-ws", n=8, seeds=1, seed=1)
    b = make_run(tmp_path / "rn", "resnet", n=8, seeds=1, seed=2, failures=False)
    assert default_out_dir([a, b]) == tmp_path / "report-ws+rn"
    assert main([str(a), str(b), "--n-boot", "50", "--n-draws", "50"]) == 0
    page = tmp_path / "report-ws+rn" / "report.html"
    parser, images = _decode_images(page)
    assert set(PLOTS) <= set(images)
    data = json.loads(page.with_name("report.json").read_text())
    assert data["runs"] == [str(a), str(b)]
    assert sorted(data["by_generator"]) == ["randwire-ws", "resnet"]
    assert [(k["a"], k["b"]) for k in data["ks_generator"]] == [("randwire-ws", "resnet")]
    assert "Spearman rho within each generator" in page.read_text()
    assert "Kolmogorov-Smirnov between generators" in page.read_text()
    # same data/train/eval: no comparability warning; a different dataset: a warning
    assert data["warnings"] == []
    cfg = (b / "config.yaml").read_text().replace("name: digits", "name: mnist")
    (b / "config.yaml").write_text(cfg)
    an = analyze([load_run(a), load_run(b)], n_boot=10, n_draws=10)
    assert len(an.warnings) == 1 and "data.name" in an.warnings[0]


def test_two_runs_of_one_generator_are_two_populations(tmp_path):
    """Two regions of one design space (two run folders, same generator, distinct candidates): EDFs
    and KS tests compare the runs, labelled "generator (run folder)"."""
    a = make_run(tmp_path / "top", "s3d", n=6, seeds=1, seed=1, failures=False)
    b = make_run(tmp_path / "bottom", "s3d", n=6, seeds=1, seed=2, failures=False)
    with Store(b / "store.sqlite") as store:  # other candidates than run a's
        rows = store.rows()
    b2 = tmp_path / "bottom2"
    b2.mkdir()
    (b2 / "config.yaml").write_text((b / "config.yaml").read_text())
    with Store(b2 / "store.sqlite") as store:
        for r in rows:
            r.job_id, r.arch_id = "b" + r.job_id, "b" + r.arch_id
            store.put(r)
    an = analyze([load_run(a), load_run(b2)], n_boot=10, n_draws=10)
    assert sorted(an.populations["generator"]) == ["s3d (bottom2)", "s3d (top)"]
    assert [(k["a"], k["b"]) for k in an.ks_generator] == [("s3d (bottom2)", "s3d (top)")]
    assert sorted(an.by_generator) == ["s3d (bottom2)", "s3d (top)"]
    one = analyze([load_run(a)], n_boot=10, n_draws=10)
    assert list(one.populations["generator"]) == ["s3d"]


def test_report_without_supervised_reference(tmp_path):
    run = make_run(tmp_path / "r", n=5, seeds=1, failures=False)
    with Store(run / "store.sqlite") as st:
        st.conn.execute("DELETE FROM jobs WHERE objective = 'supervised'")
    page = write_report([run], n_boot=20, n_draws=20)
    _, images = _decode_images(page)
    assert set(images) == {"edf_objective", "complexity"}
    assert "no reference (a finished supervised job or a reference table)" in page.read_text()


def test_cli_errors(tmp_path, capsys):
    assert main([str(tmp_path / "missing")]) == 2
    assert "RUN_DIR" in capsys.readouterr().err
    assert not (tmp_path / "missing").exists()  # a report never creates a store
    run = make_run(tmp_path / "r", n=4, seeds=1)
    assert main([str(run), "--n-boot", "0"]) == 2
    assert "--n-boot" in capsys.readouterr().err


def test_tracker_receives_tables_and_images(report):
    _, _, _, rec = report
    assert sorted(rec.images) == sorted(f"report/{k}" for k in PLOTS)
    assert all(p.is_file() for p in rec.images.values())
    cols, rows = rec.tables["report/objectives"]
    assert [r[0] for r in rows if r[cols.index("best")]] == ["rotation"]
    cols, rows = rec.tables["report/failed"]
    assert sorted(r[cols.index("status")] for r in rows) == ["diverged", "failed"]
    cols, rows = rec.tables["report/ranking"]
    assert len(rows) == 11 and all(v is None or isinstance(v, (int, float, str)) for r in rows for v in r)


def test_cli_passes_wandb_mode(monkeypatch, tmp_path):
    import unnas.report as rep

    seen = {}
    monkeypatch.setattr(rep, "write_report", lambda dirs, out, mode, **kw: seen.update(mode=mode) or tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert rep.main(["r1", "--to-wandb"]) == 0 and seen["mode"] == "offline"
    assert rep.main(["r1"]) == 0 and seen["mode"] == "disabled"
    assert rep.main(["r1", "--to-wandb", "--wandb-mode", "online"]) == 0 and seen["mode"] == "online"
    assert rep.main(["r1", "--wandb", "offline"]) == 0 and seen["mode"] == "offline"


def test_to_wandb_offline_replay(report, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    from unnas.report_wandb import to_wandb

    run, _, _, rec = report
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    an = analyze([load_run(run)], n_boot=20, n_draws=20)
    plots = [(k.split("/", 1)[1], p, "caption") for k, p in rec.images.items()]
    local = Path(to_wandb(an, plots, tmp_path / "w", "offline"))
    import wandb

    wandb.teardown()  # the service writes asynchronously; teardown waits for it
    assert local.parent == tmp_path / "w" / "wandb" and local.name.startswith("offline-run-")
    files = local / "files"

    def key(p: Path) -> str:  # W&B names media <key>_<step>_<hash>.<ext>
        return re.sub(r"_\d+_[0-9a-f]+$", "", p.name.split(".")[0])

    images = sorted(key(p) for p in (files / "media" / "images" / "report").glob("*.png"))
    assert images == sorted(PLOTS)
    tables = {key(p): json.loads(p.read_text()) for p in (files / "media" / "table" / "report").glob("*.table.json")}
    assert set(tables) == {"ranking", "objectives", "failed"}
    assert tables["objectives"]["columns"][:4] == ["name", "kind", "uses_labels", "n"]
    assert len(tables["ranking"]["data"]) == 11 and len(tables["failed"]["data"]) == 2
    # offline runs keep history and summary in the binary .wandb record stream; its protobuf
    # records hold keys and JSON values as plain bytes
    (stream,) = local.glob("*.wandb")
    raw = stream.read_bytes()
    n_rot_jobs = sum(1 for r in an.rows if r.objective == "rotation" and r.status == "done")
    assert raw.count(b"rotation/score") >= n_rot_jobs == 20  # every replayed job event
    assert raw.count(b"jigsaw/knn_acc") >= 20 and b"supervised/objective_acc" in raw
    for k in (b"best_objective", b"run_start/jobs", b"rotation/spearman", b"params/spearman"):
        assert k in raw, k


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
# CI (.ci/run) installs Chromium and sets this, so there the test runs instead of skipping
REQUIRE_CHROMIUM = os.environ.get("UNNAS_REQUIRE_CHROMIUM") == "1"

# Injected first into <head>: a content security policy that lets the page load nothing but data:
# images and inline style / script (any other fetch is blocked and reported), and a probe that
# writes, after the load event, what the browser made of every image and of every fetch.
_PROBE = """<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<script>
window.__errors = [];
window.__blocked = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || (e.target && e.target.tagName))), true);
document.addEventListener('securitypolicyviolation', e => window.__blocked.push(e.blockedURI + ' ' + e.violatedDirective));
window.addEventListener('load', () => {
  const images = [...document.images].map(i => {
    const r = i.getBoundingClientRect(), st = getComputedStyle(i);
    return {alt: i.alt, complete: i.complete, w: i.naturalWidth, h: i.naturalHeight, shownW: r.width, shownH: r.height,
            top: r.top + window.scrollY, display: st.display, visibility: st.visibility, opacity: Number(st.opacity),
            scheme: i.currentSrc.split(':')[0]};
  });
  const fetched = performance.getEntriesByType('resource').map(e => e.name);
  const out = {images, fetched, errors: window.__errors, blocked: window.__blocked,
               height: document.documentElement.scrollHeight};
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={tmp_path / 'profile'}",
             "--window-size=1280,4000"]
    env = {**os.environ, "HOME": str(tmp_path)}
    return subprocess.run([*flags, *args], capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.skipif(CHROMIUM is None and not REQUIRE_CHROMIUM, reason="chromium not installed")
def test_renders_in_headless_chromium(report, tmp_path):
    assert CHROMIUM is not None, "UNNAS_REQUIRE_CHROMIUM=1 but no chromium on PATH (.ci/run installs Debian's)"
    _, page, _, _ = report
    html = page.read_text()
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", html)  # nothing external referenced
    probed = tmp_path / "probe.html"
    probed.write_text(html.replace("<head>", "<head>" + _PROBE, 1))
    dom = _chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom", probed.as_uri())
    m = re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout, re.S)
    assert m, dom.stderr[-2000:]
    import html as html_mod

    probe = json.loads(html_mod.unescape(m[1]))
    assert probe["errors"] == [] and probe["blocked"] == []
    assert probe["fetched"] == []  # no resource came from the network (data: images are not fetches)
    images = {i["alt"]: i for i in probe["images"]}
    assert len(probe["images"]) == len(PLOTS) and len(images) == len(PLOTS)
    for alt, i in images.items():  # every plot decoded and is shown on the page
        assert i["complete"] and i["w"] > 100 and i["h"] > 100, i
        assert i["scheme"] == "data" and i["display"] != "none" and i["visibility"] == "visible", i
        assert i["opacity"] > 0 and i["shownW"] > 100 and i["shownH"] > 50, i
        assert 0 <= i["top"] < probe["height"], i
    shot = tmp_path / "report.png"  # kept under the test's temporary folder
    _chromium(tmp_path, f"--screenshot={shot}", page.as_uri())
    img = Image.open(shot)
    assert img.size == (1280, 4000)
    assert len(img.convert("L").getcolors(1 << 16) or []) > 50  # not a blank page
