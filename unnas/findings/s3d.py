"""S3D (Xie et al. 2018): top-heavy vs bottom-heavy vs full 3D vs separable, accuracy against FLOPs
on moving digits; and the gating variant."""

from __future__ import annotations

from pathlib import Path

from unnas.findings import FINDINGS, plots
from unnas.findings.base import NOT_AT_SCALE, PARTLY, REPRODUCED, Finding, Verdict, accuracies, mean_std, separated
from unnas.findings.data import data_args

VARIANTS = ("bottom-heavy", "top-heavy", "i3d", "s3d", "s3d-g")
# (better, worse): the paper's comparisons
CLAIMS = (("top-heavy", "bottom-heavy"), ("s3d", "i3d"), ("s3d-g", "s3d"))


@FINDINGS.register("s3d")
class S3D(Finding):
    title = "S3D: top-heavy beats bottom-heavy, separable beats full 3D, gating helps"
    paper = "Xie et al. 2018, Rethinking Spatiotemporal Feature Learning (S3D)"
    claim = ("top-heavy networks (temporal convolutions only at the top) are more accurate than bottom-heavy ones at "
             "fewer FLOPs; separable 3D (S3D) beats full 3D (I3D) at fewer FLOPs; feature gating (S3D-G) improves S3D")
    budgets = {
        "test": {"data": "tiny-video", "seeds": 1, "epochs": 1, "params": ["width=0.0625", "stem=small", "depths=[1,1,1]"]},
        "quick": {"data": "video", "seeds": 2, "epochs": 2, "params": ["width=0.125", "stem=small", "depths=[1,1,1]"]},
        "full": {"data": "video", "seeds": 3, "epochs": 6, "params": ["width=0.125", "stem=small"]},
    }

    def run(self, ctx, b) -> dict:
        out = {}
        for v in VARIANTS:
            rows = ctx.rank(f"s3d-{v}", ["--generator", "s3d", "--params", f"variant={v}", *b["params"], "--pretext",
                                         "supervised", "--num-archs", 1, "--seeds", b["seeds"], "--epochs",
                                         b["epochs"], "--seed", ctx.seed, *data_args(ctx, b["data"])])
            out[v] = {**mean_std(accuracies(rows)), "flops": float(rows[0]["flops"]), "params": float(rows[0]["params"])}
        return {"variants": out}

    def verdict(self, n) -> Verdict:
        v = n["variants"]
        held = [(a, z) for a, z in CLAIMS if v[a]["mean"] > v[z]["mean"]]
        clear = [(a, z) for a, z in held if separated(v[a], v[z])]
        text = "; ".join(f"{a} {100 * v[a]['mean']:.1f}% ({v[a]['flops'] / 1e6:.1f} MFLOPs) vs {z} "
                         f"{100 * v[z]['mean']:.1f}% ({v[z]['flops'] / 1e6:.1f} MFLOPs)" for a, z in CLAIMS)
        if len(clear) == len(CLAIMS):
            return Verdict(REPRODUCED, text)
        if held:
            return Verdict(PARTLY, text + f"; {len(held)} of {len(CLAIMS)} orders hold, {len(clear)} by more than two "
                                          "standard errors")
        return Verdict(NOT_AT_SCALE, text + "; none of the paper's orders holds")

    def figure(self, n, path: Path) -> None:
        fig, ax = plots.new("S3D variants on moving digits: accuracy against FLOPs", "MFLOPs per clip",
                            "test accuracy (%), mean ± std over training seeds")
        for name, s in n["variants"].items():
            ax.errorbar([s["flops"] / 1e6], [100 * s["mean"]], [100 * s["std"]], marker="o", capsize=4, label=name)
        ax.legend(fontsize=8)
        plots.save(fig, path)
