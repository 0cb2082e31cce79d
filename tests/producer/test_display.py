"""What ``submit --wait`` writes on stderr while it follows jobs: the bar, its last line once."""

from __future__ import annotations

import io

from worker.producer.display import ProgressBar
from worker.producer.wait import Tracker


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _follow(stream: io.StringIO) -> Tracker:
    """What ``follow`` does when both jobs finish within the first pull: ticks, then ``done``."""
    bar = ProgressBar(stream)
    tracker = Tracker({"a", "b"})
    bar.update(tracker)
    tracker.feed({"job_id": "a", "status": "succeeded"})
    tracker.feed({"job_id": "b", "status": "failed"})
    bar.update(tracker)
    bar.update(tracker, force=True)
    bar.done(tracker)
    return tracker


def test_a_non_terminal_gets_the_final_line_once() -> None:
    stream = io.StringIO()
    _follow(stream)
    lines = stream.getvalue().splitlines()
    assert [line.split(",")[0] for line in lines] == [
        "[..............................] 0/2 finished",
        "[##############################] 2/2 finished",
    ]
    assert "1 failed" in lines[-1]
    assert "\r" not in stream.getvalue() and "\033" not in stream.getvalue()


def test_a_terminal_redraws_in_place_and_ends_with_one_line() -> None:
    stream = Terminal()
    _follow(stream)
    text = stream.getvalue()
    assert text.count("2/2 finished") == 1 and text.endswith("\n") and text.count("\n") == 1
    assert text.startswith("\r\033[K[") and "0/2 finished" in text
