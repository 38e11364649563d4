"""The header every committed GEAR result file carries: command, commit, machine, date."""
from __future__ import annotations

import platform
import socket
import sys
import time

from reprolab.rundir import git_state


def header(command: str | None = None) -> str:
    git = git_state()
    cmd = command or "python -m " + " ".join([sys.argv[0].replace("/", ".").removesuffix(".py")] + sys.argv[1:])
    return "\n".join([
        f"- command: `{cmd}`",
        f"- commit: {git['commit']}{' (dirty)' if git['dirty'] else ''}",
        f"- machine: {socket.gethostname()}, {platform.platform()}, {platform.processor() or 'cpu'}; shared 2-core CPU",
        f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
    ])
