"""Momentum Contrast (MoCo v1 / v2, He et al. 2019, Chen et al. 2020) as a label-free ranking objective.

Small parts, each usable and tested on its own:

* :mod:`unnas.moco.queue`: :class:`KeyQueue`, the FIFO ring buffer of the K most recent keys, and
  :func:`gather_keys` (keys of all ranks under ``torch.distributed``).
* :mod:`unnas.moco.encoder`: projection heads, the momentum (key) encoder copy and its EMA update.
* :mod:`unnas.moco.loss`: InfoNCE over one positive and K negatives, and its top-1 accuracy.
* :mod:`unnas.moco.splitbn`: split BN (BN statistics over sub-batches) and the key shuffle, the
  one-process substitute of shuffle-BN; the cross-rank shuffle under ``torch.distributed``.
* :mod:`unnas.moco.augment`: batched two-view augmentation on uint8/float tensors with per-sample
  parameters from a ``torch.Generator``.
* :mod:`unnas.moco.objective`: the registered ``moco`` objective and its presets (v1, v2, cifar).
"""
