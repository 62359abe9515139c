"""What ``unnas list`` prints: every registered name of a kind with a one-line description.

The names and descriptions are written here, so listing imports neither torch nor any component
module; ``tests/test_cli.py`` checks that every kind lists exactly the registered names.
Configs are the YAML files shipped in ``unnas.configs`` (the repository's ``configs/`` folder), each
described by the first line of its header comment.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

GENERATORS = {
    "anynet": "AnyNet stages (depth, width, bottleneck, groups) from a small sampling space",
    "fbnet-macro": "NAS-Bench-Macro's skeleton with per-layer expansions and kernels (DMaskingNAS's space)",
    "macro": "NAS-Bench-Macro: an 8-digit choice string, or one drawn from the seed",
    "nb201": "NAS-Bench-201 cells: a cell string, or one drawn from the seed",
    "nds-amoeba": "NDS AmoebaNet cell space (normal and reduction cells)",
    "nds-darts": "NDS DARTS cell space (normal and reduction cells)",
    "nds-enas": "NDS ENAS cell space (normal and reduction cells)",
    "nds-nasnet": "NDS NASNet cell space (normal and reduction cells)",
    "nds-pnas": "NDS PNAS cell space (normal and reduction cells)",
    "nds-resnet": "NDS ResNet space of basic blocks",
    "nds-resnext-a": "NDS ResNeXt-A space of bottleneck blocks",
    "nds-resnext-b": "NDS ResNeXt-B space: ResNeXt-A with wider stages and more groups",
    "randwire-ba": "RandWire on Barabasi-Albert random graphs BA(M)",
    "randwire-er": "RandWire on Erdos-Renyi random graphs ER(P)",
    "randwire-ws": "RandWire on Watts-Strogatz random graphs WS(K, P)",
    "relational-mlp": "Graph2NN's MLP on a WS-flex relational graph",
    "relational-resnet": "CIFAR ResNet with relational 3x3 convolutions",
    "resnet": "CIFAR ResNet with sampled blocks per stage and width",
    "s3d": "S3D video networks (separable 3D convolutions)",
    "timm": "a timm model by name (timm:MODEL), randomly initialised",
}
OBJECTIVES = {
    "arrow-of-time": "video: is the clip played forwards or backwards? (label-free)",
    "clip-moco": "video MoCo whose positive pair is two windows of one clip (label-free)",
    "clip-rotation": "video: rotation prediction with one quarter turn per clip (label-free)",
    "colorization": "predict the colour (ab) of a grey image (label-free)",
    "jigsaw": "put shuffled tiles back in order (label-free)",
    "moco": "Momentum Contrast: instance discrimination with a key queue (label-free)",
    "rotation": "predict which quarter turn an image was rotated by (label-free)",
    "supervised": "classification with labels: the reference, never a label-free score",
    "temporal-order": "video: are the frames in order or shuffled? (label-free)",
}
PROXIES = {
    "az_expressivity": "AZ-NAS expressivity: entropy of each cell's feature-covariance spectrum",
    "az_progressivity": "AZ-NAS progressivity: the smallest step of expressivity from cell to cell",
    "az_trainability": "AZ-NAS trainability: how far the cells' Jacobian spectral norms are from 1",
    "fisher": "Fisher information of the activations (needs a loss)",
    "flops": "FLOPs per image (a size baseline)",
    "grad_norm": "norm of the weight gradients (needs a loss)",
    "grasp": "GraSP: gradient signal preservation (needs a loss)",
    "jacob_cov": "correlation of the input Jacobians over a batch",
    "meco": "MeCo: smallest eigenvalues of the layers' feature correlation matrices",
    "naswot": "NASWOT: log-determinant of the ReLU activation-pattern kernel",
    "params": "parameter count (a size baseline)",
    "snip": "SNIP: connection sensitivity |w * dL/dw| (needs a loss)",
    "swap": "SWAP-Score: distinct sample-wise activation patterns",
    "swap_reg": "SWAP-Score regularised by model size",
    "synflow": "SynFlow: synaptic saliency with all-ones input, no data",
    "vkdnw": "VKDNW: entropy of the deciles of the weights' Fisher information spectrum",
    "vkdnw_single": "VKDNW plus the number of parameter tensors (the paper's single-proxy ranking)",
    "zen": "Zen-score: log of the feature-map response to Gaussian input perturbations, with BN scaling",
    "zico": "ZiCo: mean over standard deviation of the gradients (needs a loss)",
}
SCORES = {
    "alignment": "trained network: distance between two augmented views' features (lower is better)",
    "alpha_req": "trained network: power-law decay of the feature eigenspectrum (alpha-ReQ; best near 1)",
    "heldout_loss": "trained network: the objective's loss on the held-out split (lower is better)",
    "rankme": "trained network: effective rank of the held-out features (RankMe)",
    "sotl_e": "trained network: sum of the last epoch's training losses (SoTL-E; lower is better)",
    "uniformity": "trained network: log mean Gaussian potential of the features (lower is better)",
}
DATASETS = {
    "cifar10": "CIFAR-10, 32x32 colour images in 10 classes (torchvision format)",
    "cifar100": "CIFAR-100, 32x32 colour images in 100 classes (torchvision format)",
    "digits": "scikit-learn's 1,797 handwritten 8x8 digits, embedded: needs no download",
    "fake": "seeded synthetic images (a class template plus noise), for tests",
    "fashion-mnist": "Fashion-MNIST, 28x28 greyscale clothing images in 10 classes",
    "hmdb51": "HMDB-51 action videos (a folder of video files)",
    "imagefolder": "your own images: root/<class>/*.jpg, or root/train and root/test",
    "kinetics": "Kinetics action videos (a folder of video files)",
    "mnist": "MNIST, 28x28 greyscale handwritten digits",
    "moving-digits": "scikit-learn's digits moving over a canvas, as clips (embedded)",
    "ucf101": "UCF-101 action videos (a folder of video files)",
}
STRATEGIES = {
    "evolution": "search: regularised evolution over the candidates (--strategy)",
    "fixed": "rank: every candidate gets the full budget (--budget fixed)",
    "lanas": "search: LaNAS, learned partitions of the search space (--strategy)",
    "random": "search: random candidates until the sample or time budget is spent (--strategy)",
    "sh": "rank: successive halving over rungs of epochs (--budget sh)",
}
METHODS = {
    "darts": "supernet search: DARTS with a label-free loss (--method)",
    "dmasking": "supernet search: DMaskingNAS over channels and kernels (--method)",
}
# kind -> (description table, the registry attribute in unnas.registry)
KINDS = {"generators": (GENERATORS, "GENERATORS"), "objectives": (OBJECTIVES, "OBJECTIVES"),
         "proxies": (PROXIES, "PROXIES"), "scores": (SCORES, "TRAINED_SCORES"), "datasets": (DATASETS, "DATASETS"),
         "strategies": (STRATEGIES, "STRATEGIES"), "methods": (METHODS, "SEARCH_METHODS")}
LIST_KINDS = (*KINDS, "configs")


def config_dir() -> Path:
    """The folder of the shipped configs (``configs/`` in the source tree, ``unnas/configs`` installed)."""
    return Path(str(resources.files("unnas.configs")))


def summary(text: str, limit: int = 100) -> str:
    """The first clause of ``text``: up to its first ``": "`` or ``". "`` outside parentheses, without
    long parenthetical asides, at most ``limit`` characters."""
    depth, out = 0, []
    for i, ch in enumerate(text):
        depth += (ch == "(") - (ch == ")")
        if depth == 0 and ch in ":." and text[i + 1:i + 2] in (" ", ""):
            break
        out.append(ch)
    clause = "".join(out).strip()
    while len(clause) > limit and _asides(clause):  # drop the longest parenthetical aside first
        start, end = max(_asides(clause), key=lambda se: se[1] - se[0])
        clause = (clause[:start].rstrip() + clause[end:]).strip()
    return clause if len(clause) <= limit else clause[:limit - 3].rsplit(" ", 1)[0] + "..."


def _asides(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of every top-level parenthesised part of ``text``."""
    spans, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            start = i if depth == 0 else start
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
            if depth == 0:
                spans.append((start, i + 1))
    return spans


def configs() -> dict[str, str]:
    """Shipped config name (file name without ``.yaml``) -> the first clause of its header comment."""
    out = {}
    for path in sorted(config_dir().glob("*.yaml")):
        header = []
        for line in path.read_text().splitlines():
            if not line.startswith("#") or not line.strip("# "):
                break
            header.append(line.lstrip("# ").strip())
        out[path.stem] = summary(" ".join(header)) or path.name
    return out


def entries(kind: str) -> dict[str, str]:
    """``name -> description`` for one of :data:`LIST_KINDS`."""
    return configs() if kind == "configs" else dict(KINDS[kind][0])


def resolve_config(name: str) -> Path | None:
    """A shipped config's path from its name (``fidelity`` or ``fidelity.yaml``); None if there is none."""
    if not name or "/" in name or "\\" in name:
        return None
    path = config_dir() / (name if name.endswith((".yaml", ".yml")) else f"{name}.yaml")
    return path if path.is_file() else None


def format_list(kind: str) -> str:
    """One line per name: the name, padded, then its description."""
    items = entries(kind)
    width = max((len(n) for n in items), default=0)
    return "\n".join(f"{n:<{width}}  {d}" for n, d in sorted(items.items()))
