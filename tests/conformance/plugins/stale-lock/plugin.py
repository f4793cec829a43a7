"""Broken on purpose: takes a lock file when configured and removes it only on a clean
shutdown, so after a crash it never starts again (caught by lifecycle.restart).

The lock lives in the temp folder, named after the host's pid, so parallel runs do not meet.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from celgate.sdk import Context, Continue, Plugin, PreAuth, RequestContext, serve

LOCK = Path(tempfile.gettempdir()) / f"celgate-stale-lock-{os.getppid()}"


class StaleLock(Plugin, PreAuth):
    def configure(self, ctx: Context, config: dict[str, Any]) -> None:
        try:
            fd = os.open(LOCK, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            raise RuntimeError(f"another instance holds {LOCK}") from None
        os.close(fd)

    def shutdown(self) -> None:
        LOCK.unlink(missing_ok=True)

    def on_pre_auth(self, ctx: RequestContext) -> Continue:
        return Continue()


if __name__ == "__main__":
    serve(StaleLock())
