"""Broken on purpose: greets on stdout, which is reserved for the handshake line (caught by
plugin.handshake), then waits for its host to go away."""

from __future__ import annotations

import sys

if __name__ == "__main__":
    print("Hello! Starting up...", flush=True)
    sys.stdin.read()
