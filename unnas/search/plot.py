"""The search-trajectory plot of a supernet search (matplotlib, PNG).

Panels: (1) the weights' and the architecture's training loss per epoch against the search's
cumulative CPU time; (2) for every decision (a DARTS edge or layer, a DMaskingNAS stage width,
expansion or the resolution) the probability of the choice the search finally derived, per epoch,
with their mean; (3) how many decisions of the network derived at each epoch differ from the final
one; (4, DMaskingNAS) the expected FLOPs per image under softmax(alpha / tau).
"""

from __future__ import annotations

from pathlib import Path

from unnas.search.base import SearchResult


def final_choice_probabilities(result: SearchResult) -> tuple[list[str], list[list[float]]]:
    """Per decision (``group[row]``): the probability of its final argmax choice, epoch by epoch."""
    names, series = [], []
    for group, rows in result.probabilities.items():
        for r, row in enumerate(rows):
            best = max(range(len(row)), key=lambda i: row[i])
            names.append(f"{group}[{r}]")
            series.append([h["probabilities"][group][r][best] for h in result.history])
    return names, series


def changed_decisions(result: SearchResult) -> list[int]:
    """Per epoch: decisions whose argmax differs from the final architecture's."""
    final = {g: [max(range(len(row)), key=lambda i: row[i]) for row in rows] for g, rows in result.probabilities.items()}
    out = []
    for h in result.history:
        n = 0
        for g, rows in h["probabilities"].items():
            n += sum(max(range(len(row)), key=lambda i: row[i]) != final[g][r] for r, row in enumerate(rows))
        out.append(n)
    return out


def trajectory_plot(result: SearchResult, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hist = result.history
    flops = [h.get("expected_flops") for h in hist]
    panels = 4 if any(f is not None for f in flops) else 3
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.4))
    epochs = [h["epoch"] for h in hist]
    cpu = [h["cpu_seconds"] for h in hist]
    ax = axes[0]
    ax.plot(cpu, [h["weight_loss"] for h in hist], "o-", label="weights")
    arch = [(c, h["arch_loss"]) for c, h in zip(cpu, hist) if h.get("arch_loss") is not None]
    if arch:
        ax.plot(*zip(*arch), "s-", label="architecture")
    ax.set_xlabel("CPU seconds")
    ax.set_ylabel(f"{result.objective} loss")
    ax.legend(fontsize=8)
    ax = axes[1]
    names, series = final_choice_probabilities(result)
    for s in series:
        ax.plot(epochs, s, color="0.7", lw=0.8)
    if series:
        ax.plot(epochs, [sum(v) / len(v) for v in zip(*series)], "k-", lw=2, label="mean")
        ax.legend(fontsize=8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("probability of the final choice")
    ax = axes[2]
    ax.plot(epochs, changed_decisions(result), "o-")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"decisions differing from the final (of {len(names)})")
    if panels == 4:
        axes[3].plot(epochs, [f / 1e6 for f in flops], "o-")
        axes[3].set_xlabel("epoch")
        axes[3].set_ylabel("expected MFLOPs per image")
    fig.suptitle(f"{result.method} search on {result.spec.generator} with the {result.objective} loss: "
                 f"{result.spec.arch_id}", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
