"""--stream: the worker's reply on screen as it is written, while the gateway still gets one whole reply."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from machinery.demo import as_attributes, completion_body
from machinery.gateway import cached_prompt_tokens, openai_sdk, request_role
from machinery.output import Display

STREAMED_ROLES = ("worker",)  # drafts are long enough to be worth watching; verdicts and plans are parsed whole


class StreamingClient:
    """Wraps a client so that some roles' replies stream to the display as they arrive.

    The gateway still gets one whole completion back, so budgets, accounting and
    the trace work as for any call: max_tokens is passed on unchanged. Usage
    comes from the stream's last chunk (``stream_options.include_usage``); a
    server that refuses that option is asked without it, and a stream that ends
    without usage leaves the gateway to estimate it, marked as an estimate.
    """

    def __init__(self, inner: Any, display: Display, roles: Sequence[str] = STREAMED_ROLES):
        self._inner = inner
        self._display = display
        self._roles = set(roles)
        self._usage_option = True  # dropped for the rest of the run when a server refuses it
        display.streaming.update(self._roles)
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=self._create))

    def _create(self, **request: Any) -> Any:
        role = request_role(request)
        if role not in self._roles:
            return self._inner.chat.completions.create(**request)
        while True:
            extra: dict[str, Any] = {"stream": True}
            if self._usage_option:
                extra["stream_options"] = {"include_usage": True}
            try:
                answer = self._inner.chat.completions.create(**request, **extra)
                break
            except Exception as err:  # the SDK's error classes are looked up only once one is raised
                if not (self._usage_option and "stream_options" in str(err) and _is_bad_request(err)):
                    raise
                self._usage_option = False
                self._display.note("the server refused stream_options: usage of streamed replies is estimated")
        if getattr(answer, "choices", None) is not None:  # a client that cannot stream sent it whole
            self._display.stream(role or "?", answer.choices[0].message.content or "", done=True)
            return answer
        return self._collect(answer, role or "?", request["model"])

    def _collect(self, chunks: Any, role: str, model: str) -> Any:
        """One completion, assembled from the stream's chunks while they are shown."""
        text: list[str] = []
        finish, usage = None, None
        calls: dict[int, dict[str, Any]] = {}  # tool calls arrive in pieces, by index
        for chunk in chunks:
            usage = getattr(chunk, "usage", None) or usage
            for choice in chunk.choices or []:
                delta = choice.delta
                if delta.content:
                    text.append(delta.content)
                    self._display.stream(role, delta.content)
                for call in getattr(delta, "tool_calls", None) or []:
                    slot = calls.setdefault(call.index, {"id": call.id, "name": "", "arguments": ""})
                    slot["id"] = call.id or slot["id"]
                    if call.function is not None:
                        slot["name"] += call.function.name or ""
                        slot["arguments"] += call.function.arguments or ""
                finish = choice.finish_reason or finish
        self._display.stream(role, "", done=True)
        counts = None if usage is None else (usage.prompt_tokens or 0, usage.completion_tokens or 0)
        body = completion_body("".join(text), model=model, usage=counts, finish_reason=finish or "stop")
        if calls:
            body["choices"][0]["message"]["tool_calls"] = [
                {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                for _, c in sorted(calls.items())
            ]
        if counts is not None and cached_prompt_tokens(usage):
            body["usage"]["prompt_tokens_details"] = {"cached_tokens": cached_prompt_tokens(usage)}
        return as_attributes(body)


def _is_bad_request(err: Exception) -> bool:
    openai = openai_sdk()
    return isinstance(err, (openai.BadRequestError, openai.UnprocessableEntityError))
