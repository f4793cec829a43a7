"""The example PolicyTest suites pass against compiled plugins: in-process and through the host.

Each suite's policies are compiled into one plugin; every case is replayed through the plugin's
SDK hooks (in-process) and then through a real plugin process the supervisor starts from its
`file://` folder, with the host's counter service on a simulated clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from codegen_helpers import (
    EXAMPLES,
    InProcess,
    ViaHost,
    compile_selected,
    import_plugin,
    policies_in,
    run_case,
    suites_in,
)

from celgate.engine.handle import PluginSpec
from celgate.engine.service_api import HostServiceServer
from celgate.engine.supervisor import Supervisor
from celgate.sdk.counters import AsyncMemoryCounters, MemoryCounters

SUITES = sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir())


def suite(name: str) -> tuple[list, list]:
    folder = EXAMPLES / name
    return policies_in([EXAMPLES]), suites_in([folder])


def test_every_example_folder_has_a_suite() -> None:
    assert SUITES and all(suites_in([EXAMPLES / s]) for s in SUITES)


@pytest.mark.parametrize("name", SUITES)
async def test_example_suite_passes_in_process(name: str, tmp_path: Path) -> None:
    policies, tests = suite(name)
    ran = 0
    for test in tests:
        folder = compile_selected(policies, test.policies, tmp_path, f"t-{name}")
        module = import_plugin(folder)
        for case in test.cases:
            clock = [0.0]
            counters = AsyncMemoryCounters(MemoryCounters(lambda c=clock: c[0]))
            plugin = module.CompiledPolicies(counters=counters)
            outcome = await run_case(case, InProcess(plugin), lambda t, c=clock: c.__setitem__(0, t))
            assert not outcome.failures, (case.name, outcome.failures)
            ran += 1
    assert ran > 0


@pytest.fixture
async def host_api() -> AsyncIterator[HostServiceServer]:
    server = HostServiceServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def supervisor(host_api: HostServiceServer) -> AsyncIterator[Supervisor]:
    sup = Supervisor(host_api, handshake_timeout=20.0, stop_grace=1.0)
    yield sup
    await sup.stop()


async def test_example_suites_pass_through_the_host(
    tmp_path: Path, host_api: HostServiceServer, supervisor: Supervisor
) -> None:
    policies = policies_in([EXAMPLES])
    specs, runs = [], []
    for name in SUITES:
        for i, test in enumerate(suites_in([EXAMPLES / name])):
            pid = f"h-{name}-{i}"
            folder = compile_selected(policies, test.policies, tmp_path, pid)
            kinds = {p.kind for p in policies if p.metadata.name in set(test.policies)}
            runtime = "studio" if kinds == {"ObjectApproval"} else "gateway"
            specs.append(PluginSpec(id=pid, ref=f"file://{folder}", runtime=runtime, deadline_ms=5000))
            runs.append((pid, test))
    await supervisor.start(specs)
    ran, skipped = 0, []
    for pid, test in runs:
        transport = ViaHost(supervisor.get(pid))
        for case in test.cases:
            clock = [0.0]
            host_api.service.counters = MemoryCounters(lambda c=clock: c[0])  # fresh per case
            outcome = await run_case(case, transport, lambda t, c=clock: c.__setitem__(0, t))
            assert not outcome.failures, (pid, case.name, outcome.failures)
            skipped += outcome.skipped_checks
            ran += 1
    assert ran >= 20
    # Only the documented wire limitation is ever skipped.
    assert all("mutated (pending_approval)" in s for s in skipped)
