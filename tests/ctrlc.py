"""Children the tests interrupt with Ctrl-C (SIGINT), as a terminal would, whatever started
the suite.

A process started with SIGINT ignored (``make test &`` from a non-interactive shell, nohup,
some CI runners, mutmut) hands that on to every child, and Python then never installs its
KeyboardInterrupt handler: the child's Ctrl-C would do nothing, and a test of what lab does
on Ctrl-C would test the shell instead. The child gets SIGINT's default back before it runs,
as it has under a terminal. Shared by tests/unit and tests/integration (``pythonpath``).
"""

from __future__ import annotations

import signal
import subprocess
from typing import Any


def _sigint_as_in_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # in the child, between fork and exec


def interruptible(argv: list[str], **options: Any) -> subprocess.Popen[Any]:
    """``subprocess.Popen(argv, **options)`` whose child Ctrl-C interrupts (see above)."""
    return subprocess.Popen(argv, preexec_fn=_sigint_as_in_a_terminal, **options)
