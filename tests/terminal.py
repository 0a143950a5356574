"""Run ``steward`` on a real pseudo-terminal (its own /dev/tty), answering its prompts as a
person would: after the prompt, and for hidden input once the terminal stopped echoing."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import termios
import time
from pathlib import Path

TIMEOUT = 60.0
_OWN_TERMINAL = (
    "import fcntl, runpy, sys, termios; "
    "fcntl.ioctl(0, termios.TIOCSCTTY, 0); "  # the pseudo-terminal becomes its /dev/tty
    "sys.argv[0] = 'steward'; "
    "runpy.run_module('steward', run_name='__main__', alter_sys=True)"
)


def converse(
    args: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    answers: list[tuple[bytes, str, bool]],
) -> tuple[int, bytes]:
    """Run ``python -m steward ARGS``; for each (prompt, answer, hidden) wait for ``prompt``
    (case-insensitive), then type ``answer``. The exit code and everything the terminal
    showed."""
    leader, follower = pty.openpty()

    proc = subprocess.Popen(
        [sys.executable, "-c", _OWN_TERMINAL, *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    os.close(follower)
    seen = b""

    def read(wait: float) -> bool:
        """Take what the terminal shows within ``wait`` seconds; False once it closed."""
        nonlocal seen
        if not select.select([leader], [], [], max(0.0, wait))[0]:
            return True
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the other end closed
            return False
        seen += chunk
        return bool(chunk)

    try:
        for prompt, answer, hidden in answers:
            deadline = time.monotonic() + TIMEOUT
            while prompt not in seen.lower():
                assert time.monotonic() < deadline, seen
                assert read(1.0), seen
            while hidden and termios.tcgetattr(leader)[3] & termios.ECHO:
                # click prints the prompt before getpass turns echo off
                assert time.monotonic() < deadline, seen
                time.sleep(0.02)
            os.write(leader, (answer + "\n").encode())
        deadline = time.monotonic() + TIMEOUT
        while read(1.0) and time.monotonic() < deadline:
            pass  # until the program ends and the terminal closes
        return proc.wait(timeout=TIMEOUT), seen
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(leader)
