"""SIGTERM ends a host process the way Ctrl-C does, so that its cleanup runs
(VMs killed, staging and run directories removed) whatever it was doing:
fetching, probing KVM, building or running tests."""
from __future__ import annotations

import signal
import threading


def _interrupt(signum: int, _frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def sigterm_interrupts() -> None:
    """Install the handler, unless another handler is set or this is not the main thread."""
    if threading.current_thread() is threading.main_thread() \
            and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)
