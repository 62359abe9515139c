"""Batched two-view augmentation for MoCo on ``(B, C, H, W)`` tensors.

Every random parameter is drawn per sample on the CPU from the ``torch.Generator`` passed in
(the same generator state gives the same views on every device), with a fixed number of draws
per call whatever the outcome, so results are reproducible.

Conventions:

* Each op accepts uint8 (0..255) or float (0..1) images and returns the same dtype and range
  (uint8 results are rounded). :func:`augment_view` converts to float once and returns float
  images in [0, 1].
* Ops follow torchvision's definitions (``RandomResizedCrop``, ``ColorJitter``,
  ``RandomGrayscale``, ``GaussianBlur``, ``RandomHorizontalFlip``); the tests compare them image
  by image. Colour jitter applies brightness, contrast, saturation and hue in a random order
  drawn per sample, as torchvision does per call.
* **One-channel images**: saturation, hue and grayscale conversion are exact no-ops on gray
  pixels, so only brightness and contrast act (the random draws still happen).
* **Small images**: the crop output has the input's size; the blur kernel is the odd size
  nearest to 10% of the side (at least 3; 23 px at 224 px as in MoCo v2) and the sigma range is
  given for a 224-pixel image and scaled by ``side / 224``, so a view is blurred as much relative
  to its content as in the paper.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from unnas.data.augment import random_flip

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # ITU-R 601-2 luma, as torchvision's tensor ops
REFERENCE_SIDE = 224


# ------------------------------------------------------------------ dtype handling
def _to_unit(x: torch.Tensor) -> torch.Tensor:
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x


def _like(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    if x.dtype == torch.uint8:
        return y.mul(255.0).round_().clamp_(0, 255).to(torch.uint8)
    return y.to(x.dtype)


def _per_sample(v: torch.Tensor | float, n: int, ref: torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(v, dtype=torch.float32).to(ref.device)
    return t.expand(n) if t.dim() == 0 else t


# ------------------------------------------------------------------ crop and resize
def sample_crop_boxes(n: int, height: int, width: int, scale: tuple[float, float],
                      ratio: tuple[float, float], generator: torch.Generator | None,
                      attempts: int = 10) -> torch.Tensor:
    """Integer crop boxes ``(n, 4)`` as ``(top, left, h, w)``, torchvision's RandomResizedCrop rule:
    area fraction ~ U(scale), log aspect ratio ~ U(log ratio); the first of ``attempts`` draws that
    fits is used, else a centre crop with the aspect ratio clamped to ``ratio``."""
    area = height * width
    log_r = torch.log(torch.tensor(ratio, dtype=torch.float64))
    u_area = torch.rand(n, attempts, generator=generator, dtype=torch.float64)
    u_ratio = torch.rand(n, attempts, generator=generator, dtype=torch.float64)
    u_pos = torch.rand(n, 2, generator=generator, dtype=torch.float64)
    target = area * (scale[0] + (scale[1] - scale[0]) * u_area)
    aspect = torch.exp(log_r[0] + (log_r[1] - log_r[0]) * u_ratio)
    w = torch.round(torch.sqrt(target * aspect))
    h = torch.round(torch.sqrt(target / aspect))
    ok = (w > 0) & (h > 0) & (w <= width) & (h <= height)
    first = torch.where(ok.any(1), ok.float().argmax(1), torch.full((n,), -1))
    rows = torch.arange(n)
    ch = h[rows, first.clamp(min=0)]
    cw = w[rows, first.clamp(min=0)]
    # fallback: centre crop of the whole image, aspect ratio clamped to the allowed range
    in_ratio = width / height
    if in_ratio < min(ratio):
        fw, fh = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        fh, fw = height, int(round(height * max(ratio)))
    else:
        fw, fh = width, height
    fail = first < 0
    ch = torch.where(fail, torch.full_like(ch, fh), ch).long()
    cw = torch.where(fail, torch.full_like(cw, fw), cw).long()
    top = torch.floor(u_pos[:, 0] * (height - ch + 1)).long()
    left = torch.floor(u_pos[:, 1] * (width - cw + 1)).long()
    top = torch.where(fail, (height - ch) // 2, top)
    left = torch.where(fail, (width - cw) // 2, left)
    return torch.stack([top, left, ch, cw], dim=1)


def _source_positions(start: torch.Tensor, length: torch.Tensor, out: int, device: torch.device
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bilinear source taps along one axis for each sample: ``(lo, hi, weight of hi)``, each
    ``(B, out)``; pixel centres as ``align_corners=False``, clamped to the crop's own pixels."""
    length = length.to(torch.float64)
    pos = (torch.arange(out, dtype=torch.float64) + 0.5)[None, :] * (length / out)[:, None] - 0.5
    pos = torch.minimum(pos.clamp(min=0.0), (length - 1)[:, None])
    lo = torch.floor(pos)
    w = (pos - lo).to(torch.float32)
    hi = torch.minimum(lo + 1, (length - 1)[:, None])
    s = start.to(torch.float64)[:, None]
    return (lo + s).long().to(device), (hi + s).long().to(device), w.to(device)


def resized_crop(x: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Cut box ``(top, left, h, w)`` of each image and resize it to ``size`` with bilinear
    interpolation (pixel centres as ``align_corners=False``, edges replicated inside the crop:
    torchvision's ``resized_crop`` for crops no larger than the output; larger crops are not
    low-pass filtered first). A full-image box resized to the image size returns the image."""
    xf = _to_unit(x)
    b, c, _, _ = xf.shape
    oh, ow = size
    y0, y1, wy = _source_positions(boxes[:, 0], boxes[:, 2], oh, x.device)
    x0, x1, wx = _source_positions(boxes[:, 1], boxes[:, 3], ow, x.device)
    width = xf.shape[-1]
    r0 = xf.gather(2, y0[:, None, :, None].expand(b, c, oh, width))
    r1 = xf.gather(2, y1[:, None, :, None].expand(b, c, oh, width))
    rows = r0 + (r1 - r0) * wy[:, None, :, None]
    c0 = rows.gather(3, x0[:, None, None, :].expand(b, c, oh, ow))
    c1 = rows.gather(3, x1[:, None, None, :].expand(b, c, oh, ow))
    out = c0 + (c1 - c0) * wx[:, None, None, :]
    return _like(out, x)


def random_resized_crop(x: torch.Tensor, scale: tuple[float, float] = (0.08, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3), generator: torch.Generator | None = None,
                        size: tuple[int, int] | None = None) -> torch.Tensor:
    """Per-sample random resized crop (output size defaults to the input size)."""
    h, w = x.shape[-2:]
    boxes = sample_crop_boxes(x.shape[0], h, w, scale, ratio, generator)
    return resized_crop(x, boxes, size or (h, w))


# ------------------------------------------------------------------ colour
def grayscale(x: torch.Tensor) -> torch.Tensor:
    """Luma ``(B, 1, H, W)`` of RGB images; a one-channel image is returned as it is."""
    if x.shape[1] == 1:
        return x
    xf = _to_unit(x)
    wts = torch.tensor(GRAY_WEIGHTS, dtype=xf.dtype, device=x.device).view(1, 3, 1, 1)
    return _like((xf * wts).sum(dim=1, keepdim=True), x)


def _blend(a: torch.Tensor, b: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    f = factor.view(-1, 1, 1, 1)
    return (f * a + (1 - f) * b).clamp_(0, 1)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor | float) -> torch.Tensor:
    """``clamp(x * f)`` per sample."""
    xf = _to_unit(x)
    f = _per_sample(factor, x.shape[0], xf)
    return _like((xf * f.view(-1, 1, 1, 1)).clamp_(0, 1), x)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor | float) -> torch.Tensor:
    """Blend with the mean luma of each image: ``clamp(f * x + (1 - f) * mean(gray(x)))``."""
    xf = _to_unit(x)
    f = _per_sample(factor, x.shape[0], xf)
    mean = grayscale(xf).mean(dim=(1, 2, 3), keepdim=True)
    return _like(_blend(xf, mean, f), x)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor | float) -> torch.Tensor:
    """Blend with the luma image: ``clamp(f * x + (1 - f) * gray(x))`` (no-op on one channel)."""
    if x.shape[1] == 1:
        return x.clone()
    xf = _to_unit(x)
    f = _per_sample(factor, x.shape[0], xf)
    return _like(_blend(xf, grayscale(xf), f), x)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] -> HSV with every channel in [0, 1] (hue as a fraction of a turn)."""
    r, g, b = x.unbind(dim=1)
    maxc, _ = x.max(dim=1)
    minc, _ = x.min(dim=1)
    delta = maxc - minc
    gray = delta == 0
    safe = torch.where(gray, torch.ones_like(delta), delta)
    s = delta / torch.where(maxc == 0, torch.ones_like(maxc), maxc)
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(gray, torch.zeros_like(h), h)
    h = torch.remainder(h / 6.0, 1.0)
    return torch.stack([h, s, maxc], dim=1)


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_hsv`."""
    h, s, v = x.unbind(dim=1)
    h6 = h * 6.0
    i = torch.floor(h6)
    f = h6 - i
    i = i.long() % 6
    p = (v * (1 - s)).clamp(0, 1)
    q = (v * (1 - s * f)).clamp(0, 1)
    t = (v * (1 - s * (1 - f))).clamp(0, 1)
    # sector i -> (r, g, b)
    table = torch.stack([torch.stack([v, t, p]), torch.stack([q, v, p]), torch.stack([p, v, t]),
                         torch.stack([p, q, v]), torch.stack([t, p, v]), torch.stack([v, p, q])])  # (6,3,B,H,W)
    idx = i.unsqueeze(0).unsqueeze(0).expand(1, 3, *i.shape)
    return table.gather(0, idx).squeeze(0).permute(1, 0, 2, 3)


def adjust_hue(x: torch.Tensor, factor: torch.Tensor | float) -> torch.Tensor:
    """Rotate the hue by ``f`` turns, ``f`` in [-0.5, 0.5] (no-op on one channel)."""
    if x.shape[1] == 1:
        return x.clone()
    xf = _to_unit(x)
    f = _per_sample(factor, x.shape[0], xf)
    hsv = rgb_to_hsv(xf)
    hue = torch.remainder(hsv[:, 0] + f.view(-1, 1, 1), 1.0)
    out = hsv_to_rgb(torch.stack([hue, hsv[:, 1], hsv[:, 2]], dim=1))
    return _like(out, x)


_JITTER_OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def color_jitter(x: torch.Tensor, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4,
                 hue: float = 0.1, p: float = 0.8, generator: torch.Generator | None = None) -> torch.Tensor:
    """``RandomApply([ColorJitter(b, c, s, h)], p)`` per sample: factors ~ U(1 - s, 1 + s) (lower
    end clipped at 0), hue ~ U(-h, h), the four ops in a random order per sample."""
    n = x.shape[0]
    u = torch.rand(n, 4, generator=generator)
    order = torch.argsort(torch.rand(n, 4, generator=generator), dim=1)
    apply = torch.rand(n, generator=generator) < p
    lo = torch.tensor([max(0.0, 1 - brightness), max(0.0, 1 - contrast), max(0.0, 1 - saturation), -hue])
    hi = torch.tensor([1 + brightness, 1 + contrast, 1 + saturation, hue])
    factors = lo + (hi - lo) * u
    active = torch.tensor([brightness > 0, contrast > 0, saturation > 0 and x.shape[1] > 1, hue > 0 and x.shape[1] > 1])
    out = _to_unit(x).clone()
    for r in range(4):
        for op in range(4):
            if not active[op]:
                continue
            sel = torch.nonzero(apply & (order[:, r] == op)).flatten()
            if sel.numel():
                sel_d = sel.to(x.device)
                out[sel_d] = _JITTER_OPS[op](out[sel_d], factors[sel, op].to(x.device))
    return _like(out, x) if x.dtype == torch.uint8 else out.to(x.dtype)


def random_grayscale(x: torch.Tensor, p: float = 0.2, generator: torch.Generator | None = None) -> torch.Tensor:
    """Replace each image by its luma (repeated over the channels) with probability ``p``."""
    mask = torch.rand(x.shape[0], generator=generator) < p
    if x.shape[1] == 1 or not bool(mask.any()):
        return x.clone()
    g = grayscale(x).expand_as(x)
    return torch.where(mask.to(x.device).view(-1, 1, 1, 1), g, x)


# ------------------------------------------------------------------ blur
def blur_kernel_size(side: int) -> int:
    """Odd kernel size nearest to 10% of the image side, at least 3 (23 at 224 px)."""
    k = max(3, int(round(side / 10.0)))
    return k if k % 2 else k + 1


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor | float, kernel_size: int) -> torch.Tensor:
    """Separable Gaussian blur with a per-sample ``sigma`` and reflect padding (torchvision's kernel:
    ``exp(-x^2 / (2 sigma^2))`` on ``x = -(k-1)/2 .. (k-1)/2``, normalized)."""
    if kernel_size % 2 == 0 or kernel_size < 1:
        raise ValueError(f"kernel size must be odd and positive, got {kernel_size}")
    xf = _to_unit(x)
    b, c, h, w = xf.shape
    s = _per_sample(sigma, b, xf).to(xf.dtype)
    half = (kernel_size - 1) / 2
    pos = torch.linspace(-half, half, kernel_size, dtype=xf.dtype, device=xf.device)
    k1 = torch.exp(-0.5 * (pos[None, :] / s[:, None]) ** 2)
    k1 = k1 / k1.sum(dim=1, keepdim=True)  # (B, k)
    weight = k1.repeat_interleave(c, dim=0)  # (B*C, k)
    pad = kernel_size // 2
    y = F.pad(xf.reshape(1, b * c, h, w), (pad, pad, pad, pad), mode="reflect")
    y = F.conv2d(y, weight.view(b * c, 1, 1, kernel_size), groups=b * c)
    y = F.conv2d(y, weight.view(b * c, 1, kernel_size, 1), groups=b * c)
    return _like(y.view(b, c, h, w), x)


def random_gaussian_blur(x: torch.Tensor, p: float = 0.5, sigma: tuple[float, float] = (0.1, 2.0),
                         kernel_size: int = 23, generator: torch.Generator | None = None) -> torch.Tensor:
    """Blur each image with probability ``p`` and sigma ~ U(sigma) (in pixels of this image)."""
    n = x.shape[0]
    s = sigma[0] + (sigma[1] - sigma[0]) * torch.rand(n, generator=generator)
    sel = torch.nonzero(torch.rand(n, generator=generator) < p).flatten()
    out = x.clone()
    if sel.numel():
        sel_d = sel.to(x.device)
        out[sel_d] = gaussian_blur(x[sel_d], s[sel], kernel_size)
    return out


# ------------------------------------------------------------------ the recipe
@dataclass(frozen=True)
class ViewConfig:
    """One view's recipe (MoCo v2 order: crop, jitter, grayscale, blur, flip)."""

    crop_scale: tuple[float, float] = (0.2, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)  # brightness, contrast, saturation, hue
    jitter_p: float = 0.8
    gray_p: float = 0.2
    blur_p: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 2.0)  # in pixels of a 224-pixel image
    flip_p: float = 0.5

    def blur_for(self, side: int) -> tuple[tuple[float, float], int]:
        """Sigma range (pixels of this image) and kernel size for images of this side."""
        f = side / REFERENCE_SIDE
        return (self.blur_sigma[0] * f, self.blur_sigma[1] * f), blur_kernel_size(side)


def augment_view(x: torch.Tensor, cfg: ViewConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """One random view per image: float in [0, 1], same size as the input."""
    xf = _to_unit(x)
    xf = random_resized_crop(xf, cfg.crop_scale, cfg.crop_ratio, generator)
    if cfg.jitter_p > 0 and any(v > 0 for v in cfg.jitter):
        xf = color_jitter(xf, *cfg.jitter, p=cfg.jitter_p, generator=generator)
    if cfg.gray_p > 0:
        xf = random_grayscale(xf, cfg.gray_p, generator)
    if cfg.blur_p > 0:
        sigma, k = cfg.blur_for(min(x.shape[-2:]))
        xf = random_gaussian_blur(xf, cfg.blur_p, sigma, k, generator)
    if cfg.flip_p > 0:
        xf = random_flip(xf, generator, cfg.flip_p)
    return xf


def two_views(x: torch.Tensor, cfg: ViewConfig, generator: torch.Generator | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent views of every image (augmented as one batch of 2B)."""
    v = augment_view(torch.cat([x, x]), cfg, generator)
    return v[: x.shape[0]], v[x.shape[0]:]


def scale_for_size(min_scale: float, side: int, min_side: int = 8) -> float:
    """Raise a crop's minimum area fraction so the smallest crop is at least ``min_side`` pixels
    on a side on small images (16 px: 0.25; 32 px: 0.0625, so the usual 0.08 / 0.2 stay)."""
    return max(min_scale, min(1.0, (min_side / side) ** 2)) if side > 0 else min_scale

