"""A dependency-free terminal progress bar with an ETA, for long calls."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    def __init__(self, total: int, *, stream: TextIO = sys.stderr, width: int = 30, label: str = "") -> None:
        self.total, self.stream, self.width, self.label = max(total, 1), stream, width, label
        self.start = time.monotonic()
        isatty = getattr(stream, "isatty", None)
        self.live = bool(isatty and isatty())  # frames with \r only on a terminal, never into a pipe
        self.last: tuple[int, int] | None = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc) -> None:
        if not self.live and self.last is not None:  # a pipe or a log gets one summary line
            step, total = self.last
            self.stream.write(f"{self.label}{step}/{total} in {time.monotonic() - self.start:.1f}s\n")
        elif self.live:
            self.stream.write("\n")
        self.stream.flush()

    def update(self, progress) -> None:
        """Accepts a client Progress (step/total/values) or a plain step count."""
        step = getattr(progress, "step", progress)
        total = getattr(progress, "total", 0) or self.total
        self.last = (step, total)
        if not self.live:
            return
        done = min(step / total, 1.0)
        elapsed = time.monotonic() - self.start
        eta = elapsed / done - elapsed if done > 0 else 0.0
        values = getattr(progress, "values", ())
        extra = f" objective {sum(values) / len(values):.3g}" if values else ""
        bar = "#" * int(done * self.width)
        self.stream.write(f"\r{self.label}[{bar:<{self.width}}] {step}/{total} "
                          f"{elapsed:5.1f}s eta {eta:5.1f}s{extra}")
        self.stream.flush()
