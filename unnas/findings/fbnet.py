"""FBNetV2 / DMaskingNAS (Wan et al. 2020): the masked supernet's step time and peak memory stay
nearly constant as the channel and resolution choices grow; instantiating every choice
(DARTS-style) is the comparison."""

from __future__ import annotations

import json
import math
from pathlib import Path

from unnas.findings import FINDINGS, plots
from unnas.findings.base import NOT_AT_SCALE, PARTLY, REPRODUCED, Finding, PeakMemory, Verdict
from unnas.findings.data import data_args

NEARLY_CONSTANT, AT_MOST = 1.5, 2.0  # largest / smallest space: reproduced below 1.5x, partly below 2x
CHANNELS = ([1.0], [0.5, 1.0], [0.25, 0.5, 0.75, 1.0], [0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0])
RESOLUTIONS = ([1.0], [1.0, 0.5], [1.0, 0.75, 0.5])


@FINDINGS.register("fbnet")
class FBNet(Finding):
    title = "DMaskingNAS: supernet cost nearly constant in the number of channel and resolution choices"
    paper = "Wan et al. 2020, FBNetV2: Differentiable Neural Architecture Search for Spatial and Channel Dimensions"
    claim = ("masking shares one set of weights among all channel counts and resolutions, so the supernet's step "
             "time and memory barely grow with the number of choices, unlike instantiating every choice")
    budgets = {
        "test": {"data": "tiny", "epochs": 1, "channels": 2, "resolutions": 1},
        "quick": {"data": "digits", "epochs": 1, "channels": 4, "resolutions": 3},
        "full": {"data": "cifar10", "epochs": 1, "channels": 4, "resolutions": 3},
    }

    def _measure(self, ctx, name: str, argv: list) -> dict:
        """Seconds per step from the search's own result; peak memory measured once, kept beside it."""
        saved = ctx.out / "memory" / f"{name}.json"
        with PeakMemory() as mem:
            res = ctx.search(name, argv)
        if not saved.exists():  # a resumed search only reads its result: keep the first measurement
            saved.parent.mkdir(parents=True, exist_ok=True)
            saved.write_text(json.dumps({"peak_rss": mem.peak}))
        peak = json.loads(saved.read_text())["peak_rss"]
        return {"cpu_s_per_step": res["cpu_seconds"] / max(1, res["steps"]), "steps": res["steps"],
                "peak_mib": peak / 2 ** 20 if math.isfinite(peak) else math.nan}

    def run(self, ctx, b) -> dict:
        common = ["--pretext", "rotation", "--epochs", b["epochs"], "--seed", ctx.seed, *data_args(ctx, b["data"])]
        first = CHANNELS[0], RESOLUTIONS[0]
        ctx.search("warm-up", ["--method", "dmasking", "--generator", "fbnet-macro", *common,  # one-time loading
                               f"dmasking.channel_scales={json.dumps(first[0])}", f"dmasking.resolutions={json.dumps(first[1])}"])
        masking = []
        for ch in CHANNELS[:b["channels"]]:
            for res in RESOLUTIONS[:b["resolutions"]]:
                m = self._measure(ctx, f"dmasking-c{len(ch)}-r{len(res)}",
                                  ["--method", "dmasking", "--generator", "fbnet-macro", *common,
                                   f"dmasking.channel_scales={json.dumps(ch)}", f"dmasking.resolutions={json.dumps(res)}"])
                masking.append({"channel_choices": len(ch), "resolution_choices": len(res),
                                "choices": len(ch) * len(res), **m})
        darts = self._measure(ctx, "darts-macro", ["--method", "darts", "--generator", "macro", "--params",
                                                   "width=0.25", *common])
        return {"masking": masking, "darts_macro": darts}

    def verdict(self, n) -> Verdict:
        m = n["masking"]
        lo, hi = min(m, key=lambda r: r["choices"]), max(m, key=lambda r: r["choices"])
        t = hi["cpu_s_per_step"] / lo["cpu_s_per_step"]
        mem = hi["peak_mib"] / lo["peak_mib"] if lo["peak_mib"] > 0 else math.nan
        text = (f"{lo['choices']} -> {hi['choices']} channel x resolution choices: CPU s per step x{t:.2f}, peak memory "
                f"{lo['peak_mib']:.0f} -> {hi['peak_mib']:.0f} MiB; DARTS-style macro supernet (3 operations per layer, "
                f"every one run) {n['darts_macro']['cpu_s_per_step']:.3f} CPU s per step")
        worst = max(t, mem if math.isfinite(mem) else t)
        if worst <= NEARLY_CONSTANT:
            return Verdict(REPRODUCED, text)
        if worst <= AT_MOST:
            return Verdict(PARTLY, text + f"; cost grows by more than {NEARLY_CONSTANT}x but less than {AT_MOST}x")
        return Verdict(NOT_AT_SCALE, text + f"; cost grows by more than {AT_MOST}x")

    def figure(self, n, path: Path) -> None:
        fig, (a1, a2) = plots.plt.subplots(1, 2, figsize=(9, 4))
        for r in sorted({x["resolution_choices"] for x in n["masking"]}):
            pts = [x for x in n["masking"] if x["resolution_choices"] == r]
            a1.plot([x["choices"] for x in pts], [1000 * x["cpu_s_per_step"] for x in pts], "o-",
                    label=f"masking, {r} resolution(s)")
            a2.plot([x["choices"] for x in pts], [x["peak_mib"] for x in pts], "o-", label=f"masking, {r} resolution(s)")
        d = n["darts_macro"]
        a1.axhline(1000 * d["cpu_s_per_step"], color="k", ls="--", label="DARTS-style macro supernet (3 ops/layer)")
        a2.axhline(d["peak_mib"], color="k", ls="--", label="DARTS-style macro supernet (3 ops/layer)")
        a1.set(title="Step time", xlabel="channel x resolution choices per layer", ylabel="CPU ms per training step")
        a2.set(title="Peak memory", xlabel="channel x resolution choices per layer", ylabel="peak RSS increase (MiB)")
        for a in (a1, a2):
            a.grid(alpha=0.3)
            a.legend(fontsize=7)
        fig.suptitle("DMaskingNAS supernet cost as the choices grow", fontsize=11)
        plots.save(fig, path)
