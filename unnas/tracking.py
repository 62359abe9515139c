"""Run logging: a JSON-lines log always; Weights & Biases when asked (offline needs no network)."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from unnas.errors import UserError

WANDB_MODES = ("disabled", "offline", "online")


def json_safe(v: Any) -> Any:
    """``v`` with non-finite floats as None and numpy scalars as Python numbers (strict JSON)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    if isinstance(v, np.generic):
        return json_safe(v.item())
    return v


class Tracker:
    """Appends events to ``log.jsonl`` (flushed per event) and mirrors them to W&B if enabled."""

    def __init__(self, run_dir: Path, wandb_mode: str = "disabled", project: str = "unnas",
                 config: dict | None = None, name: str | None = None):
        if wandb_mode not in WANDB_MODES:
            raise UserError("--wandb", wandb_mode, WANDB_MODES)
        self.path = Path(run_dir) / "log.jsonl"
        self.wandb = None
        if wandb_mode != "disabled":
            import wandb

            os.environ.setdefault("WANDB_SILENT", "true")
            self.wandb = wandb.init(project=project, name=name, dir=str(run_dir), mode=wandb_mode,
                                    config=config or {}, reinit=True)

    def log(self, event: str, **data: Any) -> None:
        rec = {"time": time.time(), "event": event, **json_safe(data)}
        with open(self.path, "a") as f:
            f.write(json.dumps(rec, sort_keys=True) + "\n")
        if self.wandb is not None and event in ("job", "epoch"):
            flat = {f"{data.get('objective')}/{k}": v for k, v in (data.get("metrics") or {}).items()
                    if isinstance(v, (int, float))}
            if flat:
                self.wandb.log(flat)

    def table(self, key: str, columns: list[str], rows: list[list[Any]]) -> None:
        if self.wandb is not None:
            import wandb

            self.wandb.log({key: wandb.Table(columns=columns, data=rows)})

    def image(self, key: str, path: Path) -> None:
        if self.wandb is not None:
            import wandb

            self.wandb.log({key: wandb.Image(str(path))})

    def summary(self, **data: Any) -> None:
        self.log("summary", **data)
        if self.wandb is not None:
            for k, v in data.items():
                if isinstance(v, (int, float, str)):
                    self.wandb.summary[k] = v

    def finish(self) -> None:
        if self.wandb is not None:
            self.wandb.finish()
            self.wandb = None
