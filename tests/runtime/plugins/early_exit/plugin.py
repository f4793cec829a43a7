"""Broken on purpose: dies before the handshake, with a reason on stderr."""

from __future__ import annotations

import sys

if __name__ == "__main__":
    print("cannot open the model file /nonexistent", file=sys.stderr, flush=True)
    sys.exit(3)
