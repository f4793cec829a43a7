"""Fixtures for the plugin runtime tests: a real Service API, a real supervisor, real processes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from celgate.engine.service_api import HostServiceServer
from celgate.engine.supervisor import Supervisor


@pytest.fixture
async def api() -> AsyncIterator[HostServiceServer]:
    server = HostServiceServer(tcp="127.0.0.1:0")
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def supervisor(api: HostServiceServer) -> AsyncIterator[Supervisor]:
    sup = Supervisor(
        api,
        handshake_timeout=10.0,
        health_interval=0.1,
        health_timeout=1.0,
        backoff_initial=0.05,
        backoff_max=0.5,
        stop_grace=1.0,
    )
    yield sup
    await sup.stop()
