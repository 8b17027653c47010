"""A FAKE OpenAI-compatible server on 127.0.0.1 that replays a script of replies.

For injecting faults (429, 5xx, slow, malformed, truncated, refusal) and for measuring
client overhead on loopback; it generates nothing. Each POST takes the next scripted
reply (the last one repeats); every request is recorded with its headers and body.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict -> JSON; str -> sent as is (malformed bodies); list of dicts -> server-sent events
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


def completion(content: str | None = '{"ok":true}', *, finish_reason: str = "stop", refusal: str | None = None,
               model: str = "fake-model", prompt_tokens: int = 10, completion_tokens: int = 5) -> dict:
    """A chat.completion body as OpenAI sends it."""
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "finish_reason": finish_reason,
                         "message": {"role": "assistant", "content": content, "refusal": refusal}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


def stream_chunks(content: str, model: str = "fake-model") -> list[dict]:
    """chat.completion.chunk bodies streaming `content` word by word, the last with usage."""
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model}
    words = content.split(" ")
    chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    chunks += [{**base, "choices": [{"index": 0, "delta": {"content": w if i == 0 else " " + w}}]}
               for i, w in enumerate(words)]
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 10, "completion_tokens": len(words), "total_tokens": 10 + len(words)}})
    return chunks


class _Server(ThreadingHTTPServer):
    request_queue_size = 512  # a deep listen backlog: load tests open hundreds of connections at once
    daemon_threads = True


class ScriptedServer:
    def __init__(self, replies: list[Reply] | None = None, responder: Callable[[Any], Reply] | None = None):
        """`responder(request body) -> Reply`, when given, answers instead of the script."""
        self.replies = list(replies or [Reply(body=completion())])
        self.responder = responder
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # one write per reply, no Nagle: otherwise delayed ACKs add ~40 ms to every call
            wbufsize = 1 << 16
            disable_nagle_algorithm = True

            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with server._lock:
                    server.requests.append({"path": self.path, "headers": dict(self.headers),
                                            "body": json.loads(raw or b"null")})
                    if server.responder is not None:
                        reply = server.responder(server.requests[-1]["body"])
                    else:
                        reply = server.replies.pop(0) if len(server.replies) > 1 else server.replies[0]
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    if reply.delay_s:
                        time.sleep(reply.delay_s)
                    self._reply(reply)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _reply(self, reply: Reply) -> None:
                if isinstance(reply.body, list):  # a stream: one event per chunk, then [DONE]
                    body, kind = "".join(f"data: {json.dumps(c)}\n\n" for c in reply.body) + "data: [DONE]\n\n", \
                        "text/event-stream"
                else:
                    body = reply.body if isinstance(reply.body, str) else json.dumps(reply.body or {})
                    kind = "application/json"
                data = body.encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        # a short poll: `shutdown` waits for the loop to notice, up to poll_interval (0.5 s by default)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    @property
    def calls(self) -> int:
        return len(self.requests)

    def __enter__(self) -> "ScriptedServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
