"""The stand-in upstream: a small, fast, deterministic OpenAI-compatible HTTP server.

It speaks the real wire format (`/v1/models`, `/v1/chat/completions` plain and SSE with
`data: [DONE]` and `stream_options.include_usage`, `/v1/completions`, `/v1/embeddings`, errors in
the OpenAI `{"error": {...}}` shape) so the gateway, its tests and its benchmarks run with no
network and no API key. Replies echo the prompt: the completion is `echo:` followed by the
words of the last user message, one word per stream chunk.

Test switches (request headers): `x-standin-status: 503` answers that status with an OpenAI
error; `x-standin-delay-ms: 200` waits before answering; `x-standin-chunk-delay-ms: 5` waits
between stream chunks; `x-standin-fail-after-chunks: 3` drops the connection after three
stream events (an upstream dying mid-stream). It is a raw ASGI app (no framework) because
benchmarks use it as the baseline the gateway's overhead is measured against.

Run on its own: `python -m celgate.engine.standin --listen 127.0.0.1:9000`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MODELS = ("standin-echo", "gpt-4o-mini", "gpt-4o", "text-embedding-3-small")
CREATED = 1_700_000_000  # fixed, so replies are byte-for-byte deterministic
_JSON = [(b"content-type", b"application/json")]
_SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


class BadRequest(Exception):
    def __init__(
        self,
        message: str,
        param: str | None = None,
        status: int = 400,
        type_: str = "invalid_request_error",
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message, self.param, self.status, self.type, self.code = message, param, status, type_, code


def error_body(
    message: str, type_: str = "invalid_request_error", param: str | None = None, code: str | None = None
) -> bytes:
    """The OpenAI error shape, shared with the gateway's own errors."""
    return json.dumps({"error": {"message": message, "type": type_, "param": param, "code": code}}).encode()


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _words(text: str) -> list[str]:
    return text.split()


def _reply_words(prompt: str) -> list[str]:
    return ["echo:", *_words(prompt)]


def _pieces(words: list[str]) -> list[str]:
    """Stream pieces: the words with the separating spaces kept, so they join to the text."""
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _require_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("you must provide a model parameter", "model")
    return model


def _stream_flags(body: dict[str, Any]) -> tuple[bool, bool]:
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("'stream' must be a boolean", "stream")
    opts = body.get("stream_options") or {}
    if not isinstance(opts, dict):
        raise BadRequest("'stream_options' must be an object", "stream_options")
    if opts and not stream:
        raise BadRequest("stream_options is only allowed when stream is true", "stream_options")
    return stream, bool(opts.get("include_usage", False))


class StandinApp:
    """The ASGI application."""

    def __init__(self, request_id_prefix: str = "standin") -> None:
        self.prefix = request_id_prefix
        self.counter = 0
        self.requests = 0  # served, for tests and benchmarks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self.requests += 1
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        body = b""
        more = True
        while more:
            msg = await receive()
            body += msg.get("body", b"")
            more = msg.get("more_body", False)
        try:
            delay = int(headers.get("x-standin-delay-ms", "0") or 0)
            if delay:
                await asyncio.sleep(delay / 1000)
            forced = headers.get("x-standin-status")
            if forced:
                raise BadRequest(f"stand-in forced status {forced}", status=int(forced), type_="server_error")
            await self._route(scope["method"], scope["path"], body, headers, send)
        except BadRequest as exc:
            await _send(send, exc.status, _JSON, error_body(exc.message, exc.type, exc.param, exc.code))
        except ValueError as exc:
            await _send(send, 400, _JSON, error_body(f"bad request: {exc}"))

    async def _route(self, method: str, path: str, raw: bytes, headers: dict[str, str], send: Send) -> None:
        if path == "/v1/models" and method == "GET":
            data = [
                {"id": m, "object": "model", "created": CREATED, "owned_by": "celgate-standin"}
                for m in MODELS
            ]
            await _send(send, 200, _JSON, json.dumps({"object": "list", "data": data}).encode())
            return
        handlers = {
            "/v1/chat/completions": self._chat,
            "/v1/completions": self._completions,
            "/v1/embeddings": self._embeddings,
        }
        handler = handlers.get(path)
        if handler is None:
            raise BadRequest(f"Unknown request URL: {method} {path}", status=404, code="unknown_url")
        if method != "POST":
            raise BadRequest(f"method {method} not allowed on {path}", status=405)
        try:
            body = json.loads(raw)
        except ValueError:
            raise BadRequest("We could not parse the JSON body of your request.") from None
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        delay = int(headers.get("x-standin-chunk-delay-ms", "0") or 0)
        fail_after = int(headers.get("x-standin-fail-after-chunks", "-1") or -1)
        await handler(body, _Breaking(send, fail_after) if fail_after >= 0 else send, delay)

    def _next_id(self, kind: str) -> str:
        self.counter += 1
        return f"{kind}-{self.prefix}-{self.counter}"

    async def _chat(self, body: dict[str, Any], send: Send, chunk_delay: int) -> None:
        model = _require_model(body)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest("'messages' must be a non-empty array", "messages")
        prompt_tokens = 0
        last_user = ""
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or "role" not in m:
                raise BadRequest(f"messages[{i}] must be an object with a role", f"messages[{i}]")
            text = _text_of(m.get("content"))
            prompt_tokens += len(_words(text))
            if m["role"] == "user":
                last_user = text
        stream, include_usage = _stream_flags(body)
        words = _reply_words(last_user)
        cid = self._next_id("chatcmpl")
        if not stream:
            reply = {
                "id": cid,
                "object": "chat.completion",
                "created": CREATED,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": " ".join(words)},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": _usage(prompt_tokens, len(words)),
            }
            await _send(send, 200, _JSON, json.dumps(reply).encode())
            return
        base = {"id": cid, "object": "chat.completion.chunk", "created": CREATED, "model": model}

        def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
            out: dict[str, Any] = {
                **base,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
            if include_usage:
                out["usage"] = None
            return out

        events = [chunk({"role": "assistant", "content": ""}, None)]
        events += [chunk({"content": piece}, None) for piece in _pieces(words)]
        events.append(chunk({}, "stop"))
        if include_usage:
            events.append({**base, "choices": [], "usage": _usage(prompt_tokens, len(words))})
        await _send_stream(send, events, chunk_delay)

    async def _completions(self, body: dict[str, Any], send: Send, chunk_delay: int) -> None:
        model = _require_model(body)
        prompt = body.get("prompt", "")
        if isinstance(prompt, list):
            if not all(isinstance(p, str) for p in prompt):
                raise BadRequest("'prompt' must be a string or an array of strings", "prompt")
            prompt = " ".join(prompt)
        if not isinstance(prompt, str):
            raise BadRequest("'prompt' must be a string or an array of strings", "prompt")
        stream, include_usage = _stream_flags(body)
        words = _reply_words(prompt)
        cid = self._next_id("cmpl")
        usage = _usage(len(_words(prompt)), len(words))
        if not stream:
            reply = {
                "id": cid,
                "object": "text_completion",
                "created": CREATED,
                "model": model,
                "choices": [{"index": 0, "text": " ".join(words), "logprobs": None, "finish_reason": "stop"}],
                "usage": usage,
            }
            await _send(send, 200, _JSON, json.dumps(reply).encode())
            return
        base = {"id": cid, "object": "text_completion", "created": CREATED, "model": model}
        events: list[dict[str, Any]] = [
            {**base, "choices": [{"index": 0, "text": piece, "logprobs": None, "finish_reason": None}]}
            for piece in _pieces(words)
        ]
        events.append(
            {**base, "choices": [{"index": 0, "text": "", "logprobs": None, "finish_reason": "stop"}]}
        )
        if include_usage:
            events.append({**base, "choices": [], "usage": usage})
        await _send_stream(send, events, chunk_delay)

    async def _embeddings(self, body: dict[str, Any], send: Send, chunk_delay: int) -> None:
        model = _require_model(body)
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs or not all(isinstance(x, str) for x in inputs):
            raise BadRequest("'input' must be a string or a non-empty array of strings", "input")
        dims = body.get("dimensions", 8)
        if isinstance(dims, bool) or not isinstance(dims, int) or not 1 <= dims <= 4096:
            raise BadRequest("'dimensions' must be an integer between 1 and 4096", "dimensions")
        data = [
            {"object": "embedding", "index": i, "embedding": _vector(text, dims)}
            for i, text in enumerate(inputs)
        ]
        tokens = sum(len(_words(t)) for t in inputs)
        reply = {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        await _send(send, 200, _JSON, json.dumps(reply).encode())


class StreamBroken(Exception):
    """Raised to make the ASGI server drop the connection mid-stream (a test switch)."""


class _Breaking:
    """A `send` that fails after N body events."""

    def __init__(self, send: Send, after: int) -> None:
        self.send, self.left = send, after

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.body":
            if self.left <= 0:
                raise StreamBroken("stand-in: dropping the stream as asked")
            self.left -= 1
        await self.send(message)


def _vector(text: str, dims: int) -> list[float]:
    """A deterministic unit vector derived from the text's hash."""
    raw = b""
    counter = 0
    while len(raw) < dims * 4:
        raw += hashlib.sha256(f"{counter}:{text}".encode()).digest()
        counter += 1
    values = [int.from_bytes(raw[i * 4 : i * 4 + 4], "big") / 2**32 - 0.5 for i in range(dims)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 6) for v in values]


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _send_stream(send: Send, events: list[dict[str, Any]], chunk_delay_ms: int) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": _SSE})
    for ev in events:
        if chunk_delay_ms:
            await asyncio.sleep(chunk_delay_ms / 1000)
        await send(
            {
                "type": "http.response.body",
                "body": b"data: " + json.dumps(ev).encode() + b"\n\n",
                "more_body": True,
            }
        )
    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})


async def _main(listen: str) -> None:
    from celgate.engine.config import parse_listen
    from celgate.engine.httpserver import AsgiServer, bind

    addr = parse_listen(listen)
    server = AsgiServer(StandinApp(), bind(addr.host, addr.port), name="standin")
    await server.start()
    print(server.url, flush=True)  # the one line a parent process waits for
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m celgate.engine.standin", description=__doc__)
    parser.add_argument("--listen", default="127.0.0.1:0")
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.run(_main(args.listen))
    except OSError as exc:
        print(f"standin: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
