"""``unnas report`` (and ``python -m unnas.report``): write report.html (self-contained), report.json
and PNG plots for finished runs.

Argument parsing only; the work is in :mod:`unnas.report`. Importing this module is cheap (no torch)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from unnas.cli import ArgumentParser, deprecated, finish
from unnas.errors import UserError

EXAMPLES = (
    "unnas report runs/randwire-ws-rotation-digits-1a2b3c",
    "unnas report runs/ws-run runs/er-run --out runs/ws-vs-er   # one combined report",
    "unnas report runs/my-run --wandb offline",
)


def parser(prog: str = "python -m unnas.report") -> argparse.ArgumentParser:
    p = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folder(s); several = one combined report")
    p.add_argument("--out", help="output folder (default: the run folder; for several runs "
                                 "<parent>/report-<names>)")
    p.add_argument("--wandb", choices=["disabled", "offline", "online"], default="disabled", metavar="MODE",
                   help="Weights & Biases: disabled, or offline / online to replay log.jsonl, tables and plots into W&B")
    env_mode = os.environ.get("WANDB_MODE", "")
    deprecated(p, "--to-wandb", "--wandb MODE", "wandb", nargs=0,
               const=env_mode if env_mode in ("offline", "online") else "online")
    deprecated(p, "--wandb-mode", "--wandb", "wandb", choices=["offline", "online"])
    p.add_argument("--wandb-project", help="W&B project (default: the run's run.wandb_project)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the CIs")
    p.add_argument("--n-draws", type=int, default=1000, help="draws per m in the random experiment")
    p.add_argument("--bootstrap-seed", type=int, default=0, help="seed of the bootstrap / permutation / draws")
    deprecated(p, "--seed", "--bootstrap-seed", "bootstrap_seed", type=int)
    return finish(p, examples=EXAMPLES)


def main(argv: list[str] | None = None, prog: str = "python -m unnas.report") -> int:
    a = parser(prog).parse_args(argv)
    try:
        from unnas import report

        for name, v in (("--n-boot", a.n_boot), ("--n-draws", a.n_draws)):
            if v < 1:
                raise UserError(name, v, "an integer >= 1")
        page = report.write_report([Path(p) for p in a.run_dirs], Path(a.out) if a.out else None, a.wandb,
                                   n_boot=a.n_boot, n_draws=a.n_draws, seed=a.bootstrap_seed,
                                   wandb_project=a.wandb_project)
        if a.wandb != "disabled":
            import wandb

            wandb.teardown()  # wait until the service has written / uploaded everything
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
