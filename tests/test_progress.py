"""Progress lines for logs: done/total, elapsed, ETA per finished job and a bounded heartbeat."""

from __future__ import annotations

import time

from unnas.progress import LogProgress, bar_columns, clock_text


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_clock_text():
    assert clock_text(3725) == "1:02:05" and clock_text(59.6) == "0:01:00" and clock_text(None) == "?"


def test_a_line_per_finished_job_with_done_total_and_eta():
    lines, clock = [], Clock()
    p = LogProgress(8, lines.append, clock=clock)
    assert p.eta() is None and "ETA ?" in p.status()
    clock.t += 30
    p.finished("a")
    clock.t += 30
    p.finished("b")  # 2 of 8 in 60 s: 6 left at 30 s each
    assert lines == ["progress: 1/8 jobs done, 0:00:30 elapsed, ETA 0:03:30",
                     "progress: 2/8 jobs done, 0:01:00 elapsed, ETA 0:03:00"]


def test_heartbeat_at_most_every_30_seconds_while_jobs_run():
    clock = Clock()
    p = LogProgress(4, lambda line: None, clock=clock)
    p.step("rotation abc seed 0", 40, 200)
    clock.t += 29.9
    assert p.heartbeat() is None
    clock.t += 0.1
    beat = p.heartbeat()
    assert beat == "heartbeat: 0/4 jobs done, 0:00:30 elapsed, ETA ?; running: rotation abc seed 0 step 40/200"
    assert p.heartbeat() is None  # the next one is 30 s later
    clock.t += 10
    p.finished("rotation abc seed 0")  # a progress line also resets the heartbeat
    clock.t += 25
    assert p.heartbeat() is None
    clock.t += 5
    assert p.heartbeat().startswith("heartbeat: 1/4 jobs done")


def test_heartbeat_thread_prints_while_started_and_stops_on_close():
    lines = []
    p = LogProgress(1, lines.append, every=0.05).start()
    time.sleep(0.3)
    p.close()
    n = len(lines)
    assert n >= 1 and all(line.startswith("heartbeat: 0/1") for line in lines)
    time.sleep(0.15)
    assert len(lines) == n


def test_terminal_bar_has_an_eta():
    from rich.progress import TimeRemainingColumn

    assert any(isinstance(c, TimeRemainingColumn) for c in bar_columns())
