"""Real HTTP model servers on 127.0.0.1 for tests: an OpenAI-compatible chat API (what vLLM, llama.cpp's server and
TGI speak), Anthropic's Messages API and Bedrock's Converse API, with scripted replies.

These are servers, not mocks of litellm: requests go through litellm, its provider adapters and the network stack
exactly as they would to the real thing, so a test sees what a provider would receive (``server.requests``) —
e.g. that no ``seed`` reaches Anthropic — and what the harness makes of real response bodies.

>>> with ChatServer(lambda messages, body: "hello") as srv:
...     base = srv.openai_base          # http://127.0.0.1:PORT/v1  (hosted_vllm/NAME or openai/NAME with api_base)
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

__all__ = ["ChatServer", "ReplyFn"]

#: ``reply(messages, body) -> text``: messages as ``[{"role", "content"}]`` (system first when there is one), the
#: raw request body for anything else (``response_format``, ``tools``, ``seed`` ...).
ReplyFn = Callable[[list[dict[str, str]], Mapping[str, Any]], str]


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return str(content or "")


def _words(text: str) -> int:
    return len(text.split())


class ChatServer:
    """A threaded aiohttp server; use as a context manager. ``reply`` decides every answer; ``latency_s`` delays
    each one; ``status`` (e.g. 401) makes every request fail with that HTTP status and ``error_message`` in the
    error body (providers echo all sorts of things there, keys included)."""

    def __init__(self, reply: ReplyFn, *, latency_s: float = 0.0, status: int = 200,
                 error_message: str | None = None) -> None:
        self.reply = reply
        self.latency_s = latency_s
        self.status = status
        self.error_message = error_message
        self.requests: list[dict[str, Any]] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    # -- addresses ----------------------------------------------------------------------------------------

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base(self) -> str:
        return f"{self.base}/v1"

    # -- handlers -----------------------------------------------------------------------------------------

    async def _body(self, request: Any, api: str) -> dict[str, Any]:
        body = await request.json()
        self.requests.append({"api": api, "path": request.path, "body": body,
                              "headers": {k.lower(): v for k, v in request.headers.items()}})
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        return dict(body)

    def _error_response(self) -> Any:
        from aiohttp import web

        msg = self.error_message or f"injected HTTP {self.status}"
        return web.json_response({"error": {"message": msg, "type": "error"}}, status=self.status)

    async def _openai(self, request: Any) -> Any:
        from aiohttp import web

        body = await self._body(request, "openai")
        if self.status != 200:
            return self._error_response()
        msgs = [{"role": m["role"], "content": _text_of(m.get("content"))} for m in body.get("messages", [])]
        text = self.reply(msgs, body)
        prompt = sum(_words(m["content"]) for m in msgs)
        return web.json_response({
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "served"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": _words(text),
                      "total_tokens": prompt + _words(text)},
        })

    async def _anthropic(self, request: Any) -> Any:
        from aiohttp import web

        body = await self._body(request, "anthropic")
        if self.status != 200:
            return self._error_response()
        msgs: list[dict[str, str]] = []
        system = body.get("system")
        if system:
            msgs.append({"role": "system", "content": _text_of(system)})
        msgs += [{"role": m["role"], "content": _text_of(m.get("content"))} for m in body.get("messages", [])]
        text = self.reply(msgs, body)
        tools = body.get("tools") or []
        content: list[dict[str, Any]]
        if tools:
            # Structured output arrives as a forced tool call; answer with the tool's input, as Claude does.
            try:
                args = json.loads(text)
            except json.JSONDecodeError:
                args = {"text": text}
            content = [{"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:10]}", "name": tools[0]["name"],
                        "input": args}]
            stop = "tool_use"
        else:
            content = [{"type": "text", "text": text}]
            stop = "end_turn"
        prompt = sum(_words(m["content"]) for m in msgs)
        return web.json_response({
            "id": f"msg_{uuid.uuid4().hex[:12]}", "type": "message", "role": "assistant",
            "model": body.get("model", "claude"), "content": content, "stop_reason": stop, "stop_sequence": None,
            "usage": {"input_tokens": prompt, "output_tokens": _words(text)},
        })

    async def _bedrock(self, request: Any) -> Any:
        from aiohttp import web

        body = await self._body(request, "bedrock")
        if self.status != 200:
            return self._error_response()
        msgs: list[dict[str, str]] = []
        for s in body.get("system") or []:
            msgs.append({"role": "system", "content": str(s.get("text", ""))})
        msgs += [{"role": m["role"], "content": _text_of(m.get("content"))} for m in body.get("messages", [])]
        text = self.reply(msgs, body)
        tools = ((body.get("toolConfig") or {}).get("tools")) or []
        if tools:
            try:
                args = json.loads(text)
            except json.JSONDecodeError:
                args = {"text": text}
            name = tools[0].get("toolSpec", {}).get("name", "json_tool_call")
            content: list[dict[str, Any]] = [{"toolUse": {"toolUseId": uuid.uuid4().hex[:10], "name": name,
                                                          "input": args}}]
            stop = "tool_use"
        else:
            content = [{"text": text}]
            stop = "end_turn"
        prompt = sum(_words(m["content"]) for m in msgs)
        return web.json_response({
            "output": {"message": {"role": "assistant", "content": content}}, "stopReason": stop,
            "usage": {"inputTokens": prompt, "outputTokens": _words(text), "totalTokens": prompt + _words(text)},
            "metrics": {"latencyMs": 1},
        })

    # -- lifecycle ----------------------------------------------------------------------------------------

    async def _serve(self) -> None:
        from aiohttp import web

        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._openai)
        app.router.add_post("/chat/completions", self._openai)
        app.router.add_post("/v1/messages", self._anthropic)
        app.router.add_post("/model/{model_id}/converse", self._bedrock)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1])
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as e:  # surfaced by start()
            self._error = e
            self._ready.set()
        finally:
            self._loop.close()

    def start(self) -> ChatServer:
        self._thread = threading.Thread(target=self._run, name="chat-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(30) or self._error is not None:
            raise RuntimeError(f"test server did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> ChatServer:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
