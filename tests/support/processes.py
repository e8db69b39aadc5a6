"""Reading a real subprocess's output (a `ledger-net node`) with bounded waits."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any


class LineReader:
    """Collects a stream's lines on a thread, so waits for a line are bounded
    (select() on a buffered pipe misses lines already read into the buffer)."""

    def __init__(self, stream: Any) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: Any) -> None:
        for line in stream:
            self.lines.put(line)
        self.lines.put(None)

    def until(self, marker: str, timeout: float) -> str:
        """The first line holding `marker`; fail with everything seen after `timeout`."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if marker in line:
                return line
        raise AssertionError(f"no {marker!r} from the node: {''.join(self.seen)}")

    def rest(self, timeout: float = 10.0) -> str:
        """Everything the stream said, once it has ended (waits up to `timeout` for the end)."""
        self._thread.join(timeout)
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.seen.append(line)
        return "".join(self.seen)
