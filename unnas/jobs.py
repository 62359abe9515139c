"""What one job computes, by kind: a *training* job (an objective trained on the candidate, then
its label-free held-out score and the probes) or a *proxy* job (a zero-cost score of the
untrained candidate). The runner (:mod:`unnas.runner`) wraps both with checkpoints, error
handling and the results row.

Metrics of a training job (fractions in [0, 1]):

* ``score``: the label-free held-out score: the objective's own held-out accuracy (rotation,
  jigsaw, colorization), or its :meth:`~unnas.objectives.base.Objective.heldout_score` (MoCo:
  view retrieval). It never reads a label. For ``supervised`` it is the test accuracy.
* ``objective_acc`` / ``objective_loss``: the objective's own held-out accuracy and loss.
* label-free scores of the trained network (:data:`~unnas.registry.TRAINED_SCORES`,
  :mod:`unnas.eval.trained`), raw values under their names: ``rankme``, ``alpha_req``,
  ``alignment``, ``uniformity`` (held-out embeddings), ``heldout_loss`` and ``sotl_e`` (the sum of
  the last epoch's per-step training losses).
* probes that read labels (``eval.probes``): ``knn_acc_uses_labels`` (weighted kNN of the frozen
  features, training labels voting), ``linear_acc_uses_labels`` (linear probe on the frozen
  features, weight decay chosen on the validation split).

Metrics of a proxy job: ``score`` (the proxy's value, higher is better; log-scaled proxies keep
the raw value, the ranking takes its log10: :func:`unnas.eval.proxies.base.scaled`), ``proxy_seconds``,
and ``params`` / ``flops``. Proxy jobs of one candidate in one process share what they compute
alike (:func:`proxy_memo`: SWAP's count for ``swap`` and ``swap_reg``, AZ-NAS's cell entropies,
the one backward of ``grad_norm``, ``snip`` and ``fisher``): each is still its own job and row, with
the value it has alone; ``proxy_seconds`` of the later ones is then the little that was left.
A NaN or infinite value (NASWOT's singular kernel) is a finished job whose ``score`` is ``-inf``
(``nonfinite`` holds the value computed): the network ranks last. The images a proxy sees are the
first ones of one permutation of the training split seeded by the job seed, the same for every
candidate.
"""

from __future__ import annotations

import collections
import math
import time

import torch

from unnas.config import Config
from unnas.errors import DivergedError, UserError
from unnas.registry import OBJECTIVES, PROXIES

PROBES = ("knn", "linear")
# metric key of each probe; the suffix says it in every output that shows it
PROBE_METRICS = {"knn": "knn_acc_uses_labels", "linear": "linear_acc_uses_labels"}


def job_kind(name: str) -> str:
    """``train`` for a registered objective, ``proxy`` for a registered proxy (names never collide)."""
    if name in PROXIES:
        return "proxy"
    OBJECTIVES.get(name)  # unknown names -> UserError listing the objectives
    return "train"


def check_names_unique() -> None:
    clash = sorted(set(OBJECTIVES.names()) & set(PROXIES.names()))
    if clash:
        raise UserError("--proxies", clash[0], None, message="a name is both an objective and a proxy")


def parse_probes(text: str) -> list[str]:
    names = [p.strip() for p in (text or "").split(",") if p.strip()]
    for n in names:
        if n not in PROBES:
            raise UserError("eval.probes", text, ", ".join(PROBES) + ' (comma-separated) or ""')
    return names


@torch.no_grad()
def trained_input(objective, split, losses: list, heldout_loss: float, batch_size: int, device: torch.device,
                  features: torch.Tensor | None = None):
    """The :class:`~unnas.eval.trained.TrainedInput` of a trained objective: pooled eval-mode
    features of the first ``MAX_SAMPLES`` held-out images (``features``: those of the whole split,
    when already extracted), two augmented views of the first ``VIEW_SAMPLES`` of them (drawn with a
    generator seeded 0, the same for every candidate), its held-out loss and per-step losses."""
    from unnas.eval.features import extract_features
    from unnas.eval.trained import MAX_SAMPLES, VIEW_SAMPLES, TrainedInput

    images = split.images[:MAX_SAMPLES]
    feats = features[:MAX_SAMPLES] if features is not None else extract_features(objective, images, batch_size, device)
    was = objective.training
    objective.eval()
    gen = torch.Generator().manual_seed(0)
    v1, v2 = [], []
    try:
        for s in range(0, min(VIEW_SAMPLES, images.shape[0]), batch_size):
            x1, x2 = objective.positive_pair(images[s:min(s + batch_size, VIEW_SAMPLES)].to(device), gen)
            v1.append(objective.backbone.pooled(x1).float().cpu())
            v2.append(objective.backbone.pooled(x2).float().cpu())
    finally:
        objective.train(was)
    return TrainedInput(feats, (torch.cat(v1), torch.cat(v2)), heldout_loss, losses)


def training_metrics(objective, data, cfg: Config, device: torch.device, losses: list | None = None) -> dict:
    """Held-out metrics of a trained objective (see the module docstring); ``losses``: per epoch,
    the engine's per-step training losses (:attr:`~unnas.engine.TrainResult.step_losses`)."""
    from unnas.engine import evaluate_objective
    from unnas.eval.features import extract_features
    from unnas.eval.trained import trained_scores

    ev = cfg.eval
    own = evaluate_objective(objective, data.test, ev.batch_size, seed=0, device=device)
    out = {"objective_acc": own["acc"], "objective_loss": own["loss"]}
    lf = objective.heldout_score(data.test, ev.batch_size, 0, device)
    out["score"] = own["acc"] if lf is None else float(lf)
    probes = parse_probes(ev.probes)
    split_feats = {s: extract_features(objective, getattr(data, s).images, ev.batch_size, device)
                   for s in ("train", "val", "test") if probes and (s != "val" or "linear" in probes)}
    out.update(trained_scores(trained_input(objective, data.test, losses or [], own["loss"], ev.batch_size, device,
                                            split_feats.get("test"))))
    if not probes:
        return out
    if not all(torch.isfinite(f).all() for f in split_feats.values()):
        raise DivergedError(-1, float("nan"))
    ftr, fte = split_feats["train"], split_feats["test"]
    if "knn" in probes:
        from unnas.eval.knn import knn_accuracy

        out[PROBE_METRICS["knn"]] = knn_accuracy(ftr, data.train.labels, fte, data.test.labels, ev.knn_k, ev.knn_t,
                                                 data.num_classes)
    if "linear" in probes:
        from unnas.eval.linear import linear_probe

        fva = split_feats["val"]
        res = linear_probe(ftr, data.train.labels, fva if len(fva) else None, data.val.labels if len(fva) else None,
                           fte, data.test.labels, num_classes=data.num_classes,
                           **({} if len(fva) else {"weight_decays": (1e-4,)}))
        out[PROBE_METRICS["linear"]] = res["top1"]
    return out


def proxy_batch(data, n: int, seed: int) -> torch.Tensor:
    """The first ``n`` of one seeded permutation of the training images: every proxy job of ``seed``
    sees the same images, whatever the candidate (a proxy reading fewer reads a prefix)."""
    if n > len(data.train):
        raise UserError("proxy batch", n, f"at most the {len(data.train)} training images",
                        message="the proxy reads more images than the training split holds")
    gen = torch.Generator().manual_seed(int(seed))
    return data.train.images[torch.randperm(len(data.train), generator=gen)[:n]]


MEMO_NETWORKS = 4096  # candidates whose shared proxy results a job process keeps (a few floats each)
_MEMOS: collections.OrderedDict[tuple, dict] = collections.OrderedDict()


def proxy_memo(spec, cfg: Config, seed: int, device: torch.device) -> dict:
    """The dict of results that the proxy jobs of one candidate share in this process
    (:func:`unnas.eval.proxies.base.shared`): one per spec, seed, label-free loss, data, device and
    thread count, the least recently used dropped past :data:`MEMO_NETWORKS`."""
    loss = cfg.proxy.loss
    # the thread count too: float sums, hence values, depend on it
    key = (spec.to_json(), int(seed), loss, repr(cfg.objectives.get(loss)), repr(cfg.data), str(device),
           torch.get_num_threads())
    memo = _MEMOS.pop(key, None)
    _MEMOS[key] = memo = {} if memo is None else memo
    while len(_MEMOS) > MEMO_NETWORKS:
        _MEMOS.popitem(last=False)
    return memo


def proxy_metrics(name: str, spec, data, cfg: Config, seed: int, device: torch.device) -> dict:
    """Build the candidate (torch seed ``seed``), wrap it in the label-free objective ``proxy.loss``
    and compute proxy ``name`` on :func:`proxy_batch`."""
    from unnas.eval.proxies.base import NonFiniteProxy, ProxyInput, compute_proxy, images_needed
    from unnas.generators.complexity import count_flops, count_params
    from unnas.objectives.base import DataInfo, build_objective, objective_class
    from unnas.spec import build

    loss = cfg.proxy.loss
    cls = objective_class(loss)
    if cls.uses_labels:
        raise UserError("proxy.loss", loss, "a label-free objective", message="proxies must not read labels")
    torch.manual_seed(int(seed))
    in_ch = cls.input_channels(data.channels)
    backbone = build(spec, in_ch)
    info = DataInfo.of(data)
    cx = {"params": count_params(backbone), "flops": count_flops(backbone, (1, *info.input_shape(in_ch)))}
    objective = build_objective(loss, backbone, info, cfg.objectives.get(loss)).to(device)
    options = cfg.objectives.get(name)
    images = proxy_batch(data, images_needed(name, options), seed).to(device)
    x = ProxyInput(objective, images, torch.Generator().manual_seed(int(seed)), proxy_memo(spec, cfg, seed, device))
    t0 = time.perf_counter()
    try:
        value, extra = compute_proxy(name, x, options), {}
    except NonFiniteProxy as e:  # e.g. NASWOT's singular kernel: the authors rank such a network last
        value, extra = -math.inf, {"nonfinite": str(e.value)}
    return {**cx, "score": float(value), **extra, "proxy_seconds": time.perf_counter() - t0}
