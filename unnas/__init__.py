"""unnas: rank candidate networks without labels, and measure how far the label-free ranking agrees
with the supervised one.

    import unnas

    run = unnas.score("nb201", ["synflow", "naswot"], n=8, data="digits", runs_dir="runs")
    print(run.table[0], run.files["ranking.csv"])
    print(unnas.agreement(run.column("synflow"), run.column("naswot"), n_boot=200)["spearman"])

Importing :mod:`unnas` is cheap: torch loads when a function needs it.
"""

from __future__ import annotations

from importlib import metadata as _metadata

from unnas.api import Run, agreement, load_reference, load_run, rank_population, sample_population, score
from unnas.errors import UserError

try:
    __version__ = _metadata.version("unnas")
except _metadata.PackageNotFoundError:  # a source tree that was not installed
    __version__ = "0+unknown"

# The functions are not named after the package's modules (unnas.rank, unnas.sample): importing
# such a module would rebind the package attribute and hide the function.
__all__ = ["Run", "UserError", "__version__", "agreement", "load_reference", "load_run", "rank_population",
           "sample_population", "score"]
