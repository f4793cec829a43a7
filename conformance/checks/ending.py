"""Checks that end the plugin's life, run last: shutdown, restart, stdin EOF, cookie."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path

import grpc

from celgate.conformance.checks.common import hook_calls, verdict_problems
from celgate.conformance.inputs import examples, request_contexts
from celgate.conformance.registry import Failed, Options, Skipped, check
from celgate.conformance.session import Session, wait_exit
from celgate.engine.handle import HookError
from celgate.engine.loaders import FileLoader
from celgate.sdk import protocol
from celgate.v1 import plugin_pb2


def _process_only(session: Session, why: str) -> None:
    if session.ref.startswith("grpc://"):
        raise Skipped(f"a grpc:// plugin runs as a network service the host does not own: {why}")
    if session.endpoint is None or session.endpoint.process is None:
        raise Skipped("no plugin process in this run")


@check(
    "lifecycle.shutdown",
    "Shutdown(grace_ms) is answered and the process exits within the grace period, with stdin still open.",
    "core",
)
async def shutdown(session: Session, options: Options) -> str | None:
    _process_only(session, "the host never sends it Shutdown")
    assert session.conn is not None and session.endpoint is not None
    grace = options.shutdown_grace_ms / 1000
    started = time.monotonic()
    try:
        await session.conn.stub.Shutdown(
            plugin_pb2.ShutdownRequest(grace_ms=options.shutdown_grace_ms), timeout=grace
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.UNAVAILABLE:  # it may exit before the reply is read
            await session.close_instance()
            raise Failed(f"Shutdown: {exc.code().name}: {exc.details()}") from None
    left = max(0.0, grace - (time.monotonic() - started)) + 0.5
    code = await wait_exit(session.endpoint, left)
    await session.close_instance()
    if code is None:
        raise Failed(
            f"still running {options.shutdown_grace_ms + 500} ms after Shutdown(grace_ms="
            f"{options.shutdown_grace_ms}) (killed)"
        )
    return f"exited with code {code} in {time.monotonic() - started:.2f}s"


@check(
    "lifecycle.restart",
    "After its process is killed, the plugin starts again, reports SERVING and answers its hooks.",
    "core",
)
async def restart(session: Session, options: Options) -> str | None:
    if session.ref.startswith("grpc://"):
        raise Skipped("a grpc:// plugin is restarted by whoever runs it; the host only reconnects")
    await session.kill()
    await session.close_instance()
    await session.reopen()
    if not session.ready:
        raise Failed(f"did not come back: {session.observed.load_error}")
    if not await session.alive():
        raise Failed("came back but does not report SERVING")
    ctx = examples(request_contexts(), 1)[0]
    for name, call in hook_calls(session, ctx):
        try:
            reply = await session.hook(call, max(session.deadline_ms / 1000, 2.0))
        except HookError as exc:
            raise Failed(f"after the restart, {name}: {exc.kind}: {exc.message}") from None
        problems = verdict_problems(name, reply)
        if problems:
            raise Failed("after the restart: " + "; ".join(problems))
    return f"pid {session.endpoint.pid if session.endpoint else '?'} up"


@check(
    "lifecycle.stdin-eof",
    "The process exits on its own when stdin reaches EOF (the host died): no orphans.",
    "extended",
)
async def stdin_eof(session: Session, options: Options) -> str | None:
    _process_only(session, "it has no stdin from the host")
    endpoint = session.endpoint
    assert endpoint is not None and endpoint.process is not None
    proc = endpoint.process
    if proc.stdin is not None:
        proc.stdin.close()
    code = await wait_exit(endpoint, 5.0)
    await session.close_instance()
    if code is None:
        raise Failed("still running 5 s after its stdin closed (killed)")
    return f"exited with code {code}"


@check(
    "lifecycle.cookie",
    "Started without the magic cookie, the program refuses: a non-zero exit and no handshake line.",
    "extended",
    needs_load=False,
)
async def cookie(session: Session, options: Options) -> str | None:
    if not session.ref.startswith("file://"):
        raise Skipped("only file:// plugins are started by the host")
    base = Path(session.base_dir) if session.base_dir else Path.cwd()
    command = FileLoader().resolve(session.ref, base)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELGATE_")}
    env.pop(protocol.COOKIE_KEY, None)
    if command.manifest is not None:
        env[protocol.ENV_MANIFEST] = str(command.manifest)
    proc = await asyncio.create_subprocess_exec(
        *command.argv,
        cwd=str(command.cwd),
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 5.0)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        await proc.wait()
        raise Failed("without the cookie it kept running for 5 s (killed)") from None
    if b"|grpc" in out:
        raise Failed(f"without the cookie it printed a handshake: {out[:120]!r}")
    if proc.returncode == 0:
        raise Failed("without the cookie it exited with code 0")
    if not err.strip():
        raise Failed("without the cookie it exited without saying why on stderr")
    return f"exit {proc.returncode}: {err.decode('utf-8', 'replace').strip().splitlines()[0][:100]}"
