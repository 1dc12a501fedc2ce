"""SIGINT / SIGTERM as a request to stop a search cleanly.

The first signal asks the search to stop (its children in flight are
cancelled and its state checkpointed); a second one abandons at once by
raising ``KeyboardInterrupt``. Handlers are installed in the main thread only
(Python allows no other) and the previous ones are restored afterwards.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Callable, Iterator


@contextlib.contextmanager
def stop_on_signals(enabled: bool, is_stopping: Callable[[], bool],
                    request_stop: Callable[[str], None],
                    message: Callable[[str], None]) -> Iterator[None]:
    """Within the block, SIGINT / SIGTERM call ``request_stop(reason)`` and
    ``message(line)``; when ``is_stopping()`` already, they abandon.

    Does nothing when not ``enabled`` or outside the main thread.
    """
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        name = signal.Signals(signum).name
        if is_stopping():
            raise KeyboardInterrupt(f"second {name}: abandoning")
        request_stop(f"{name} received")
        message(f"{name}: stopping; children in flight are cancelled (a child training in "
                "this process finishes first; send it again to abandon it at once) ...")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)
