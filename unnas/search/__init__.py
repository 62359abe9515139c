"""Supernet searches whose training signal is any objective's loss: DARTS (:mod:`unnas.search.darts`)
and DMaskingNAS (:mod:`unnas.search.dmasking`), both run by :func:`run_supernet_search`; the run
folder and the command line are :mod:`unnas.search.run` and ``python -m unnas.search``."""

from unnas.search import darts, dmasking  # noqa: F401 - register the search methods
from unnas.search.base import SearchResult, Supernet
from unnas.search.loop import run_supernet_search

__all__ = ["SearchResult", "Supernet", "run_supernet_search"]
