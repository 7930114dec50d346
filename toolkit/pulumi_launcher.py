"""Run as a script, never imported by the toolkit: become the `pulumi` CLI, set to be killed when
the toolkit process that started it dies, however it dies (SIGKILL included).

`python -I -S pulumi_launcher.py TOOLKIT_PID CLI ARGS...` asks Linux to send this process SIGKILL
when its parent dies (`PR_SET_PDEATHSIG`, which `execve` keeps), checks that the parent is still
TOOLKIT_PID (had the toolkit died before the request, no signal would ever come), then execs CLI
with ARGS in place of itself: same process, so the CLI's own exit status, signals and pipes are
the caller's to see. Standard library only and without site-packages, so it starts in a few
milliseconds. Linux only; `toolkit.workspaces` uses it only there.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1
"""From <linux/prctl.h>."""


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("error: usage: pulumi_launcher.py TOOLKIT_PID CLI [ARGS...]", file=sys.stderr)
        return 2
    toolkit_pid, cli, args = int(argv[0]), argv[1], argv[2:]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        reason = os.strerror(ctypes.get_errno())
        print(f"error: prctl(PR_SET_PDEATHSIG) failed: {reason}", file=sys.stderr)
        return 1
    if os.getppid() != toolkit_pid:
        print(f"error: the process that started pulumi ({toolkit_pid}) has exited", file=sys.stderr)
        return 1
    os.execv(cli, ["pulumi", *args])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
