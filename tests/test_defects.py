"""Wrong results and silent traps, each pinned by a test that fails without its fix."""

from __future__ import annotations

import io

from rich.console import Console

from unnas.analysis import build_ranking
from unnas.store import JobRow


def _rows(n: int) -> list[JobRow]:
    out = []
    for i in range(n):
        for obj, v in (("rotation", 0.1 * i), ("supervised", 0.5 + 0.01 * i)):
            out.append(JobRow(f"{obj}{i}", f"a{i}", "{}", "g", obj, 0, "done", {"score": v, "objective_acc": v}))
    return out


def _printed(n: int) -> str:
    from unnas.summary import print_ranking

    buf = io.StringIO()
    print_ranking(build_ranking(_rows(n), n_boot=50), Console(file=buf, width=200))
    return buf.getvalue()


def test_few_candidates_warn_that_the_statistics_mean_nothing():
    from unnas.eval.correlation import MIN_CANDIDATES

    assert MIN_CANDIDATES == 5
    assert "[+1.000, +1.000]" in _printed(3)  # the collapsed interval the warning is about
    assert "fewer than 5" in _printed(3)
    assert "warning" not in _printed(MIN_CANDIDATES)
