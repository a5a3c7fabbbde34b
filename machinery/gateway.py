"""The model gateway: the one place that talks to a model server.

``LLM`` is what the chapter calls ``Gateway``: it sends a request with the
official openai SDK (Chat Completions), falls back when a server refuses a
capability (structured output, tool_choice, max_tokens), turns every SDK error
into one line and a stop reason, counts what each call cost, and writes the
trace. The budget gate is not here: the chapter's ``ask()`` runs it before
every call and passes the call's ``max_tokens`` in.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from machinery.output import Display, Trace, observe
from machinery.prices import Ledger, price_for
from machinery.text import clean_text, first_line, redact
from multi_agent_system import (
    BYTES_PER_TOKEN_GUESS,
    TOKEN_WARNING_SHARE,
    BudgetExhausted,
    ModelUnavailable,
    Price,
    Reply,
    Settings,
    SharedState,
    StopRun,
    TokenCount,
    role_cap,
    system,
)

REQUEST_TIMEOUT_S = 120.0  # one request; small local models on a laptop CPU are slow


SDK_MAX_RETRIES = 3  # the SDK retries 429, 5xx, timeouts and dropped connections with backoff


ROLE_HEADER = "X-Agent-Role"  # sent with each request, so fakes and proxies know which agent asks


RESPONSE_FORMATS = ("json_schema", "json_object", "text")


def estimate_tokens(messages: list[dict[str, Any]], extras: list[Any] | None = None) -> int:
    """A deliberately high guess of a prompt's tokens, made before the call.

    Tokenizers average about 4 bytes of English per token (code and short
    lines come nearer 3); dividing by BYTES_PER_TOKEN_GUESS overestimates.
    ``extras`` are the other things a server turns into prompt tokens: tool
    schemas, a response_format schema. ``LLM`` also scales this guess up when
    a server reports more prompt tokens than it predicted.

    >>> estimate_tokens([{"role": "user", "content": "x" * 300}])
    127
    """
    total = 3  # every reply is primed with a few tokens
    for message in messages:
        total += 4  # role and separators
        total += estimate_text_tokens(json.dumps(message.get("content") or "")[1:-1])
        if message.get("tool_calls"):
            total += estimate_text_tokens(json.dumps(message["tool_calls"], default=str))
    for extra in extras or []:
        total += estimate_text_tokens(json.dumps(extra, default=str))
    return total


def estimate_text_tokens(text: str) -> int:
    return math.ceil(len(text.encode()) / BYTES_PER_TOKEN_GUESS)


def openai_sdk() -> Any:
    """The SDK, imported on first need: it costs ~0.35 s, which --help and the offline demo never pay."""
    import openai

    return openai


class LLM:
    """The gateway to a model: the call, its fallbacks and errors, accounting and the trace.

    Every agent (here and in stage 3) calls ``complete`` through the chapter's
    ``ask()``; nothing else in the project talks to a server. The openai client is made on first use, never
    at import, so importing this module does no work.
    """

    def __init__(
        self,
        settings: Settings,
        display: Display,
        trace: Trace,
        client: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.settings = settings
        self.display = display
        self.trace = trace
        if trace is not None:  # tests may run without one
            trace.hide(settings.api_key)
        self.ledger = Ledger()
        self._client = client
        self._owns_client = client is None  # only a client made here may be closed here
        self._clock = clock
        self._started = clock()
        self._format_level = 0  # index into RESPONSE_FORMATS; only ever goes down
        self._token_param = "max_tokens"  # some servers want max_completion_tokens
        self._tool_choice_ok = True  # some servers refuse tool_choice; then it is dropped
        self._warned_80 = False
        self._estimate_scale = 1.0  # raised when a server counts more prompt tokens than estimated
        self.before_call: Callable[[str, list[dict[str, Any]], int], None] | None = None  # --step pauses here
        self.human: Callable[[SharedState, Any], tuple[Any, str]] | None = None  # --human: a person at the top rung

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = openai_client(self.settings)
        return self._client

    def elapsed(self) -> float:
        return self._clock() - self._started

    def estimate(self, messages: list[dict[str, Any]], extras: Sequence[Any] = ()) -> int:
        """A high guess of a prompt's tokens, scaled up if this server has counted more than guessed."""
        return math.ceil(estimate_tokens(messages, list(extras)) * self._estimate_scale)

    def spent(self) -> tuple[TokenCount, float | None]:
        ledger = self.ledger
        tokens = TokenCount(prompt=ledger.prompt_tokens, completion=ledger.completion_tokens, total=ledger.total_tokens)
        return tokens, ledger.cost_usd

    def price(self, role: str) -> Price | None:
        return price_for(self.settings.model_for(role))

    def record(self, event: str, state: SharedState, **details: Any) -> None:
        """Show and record a moment of the run (machinery/output.py draws it); the state is only read."""
        observe(self, event, state, **details)

    def complete(
        self,
        role: str,
        messages: list[dict[str, Any]],
        *,
        max_tokens: int,
        schema: dict[str, Any] | None = None,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | None = None,
        reply_format: str | None = None,
    ) -> Reply:
        """Ask ``role``'s model for the next message, writing at most ``max_tokens`` (the budget gate's answer).

        ``schema`` asks for structured output; ``tool_choice`` ("required", "auto") is passed on
        with ``tools`` where the server allows it; ``reply_format`` describes ``schema`` in words,
        added to the system prompt while the server does not enforce it.
        Raises ModelUnavailable when the server refuses or keeps failing.
        """
        model, limit = self.settings.model_for(role), max_tokens
        guess = estimate_tokens(messages, ([tools] if tools else []) + ([schema, reply_format] if schema else []))
        if limit < role_cap(role):
            self.display.note(f"{role}: max_tokens clamped to {limit} to stay within budget")
        request: dict[str, Any] = {"model": model, "messages": messages, "extra_headers": {ROLE_HEADER: role}}
        if tools:
            request["tools"] = tools
            if tool_choice:
                request["tool_choice"] = tool_choice
        if self.before_call is not None:  # --step: the person at the front of the class says when
            self.before_call(role, messages, limit)
        self.display.prompt(role, self._as_sent(messages, schema, reply_format), limit)
        _ = self.client  # built before the clock starts: a call's latency is the server's, not the SDK's import
        started = self._clock()
        with self.display.thinking(role, model):
            completion = self._create(request, limit, schema, reply_format)
        reply = self._account(role, model, messages, completion, self._clock() - started, limit)
        self._calibrate(guess, reply)
        self.trace.event(
            "call",
            role=role,
            model=model,
            prompt=self._as_sent(messages, schema, reply_format),
            reply=reply.content,
            tool_calls=reply.tool_calls,
            prompt_tokens=reply.prompt_tokens,
            completion_tokens=reply.completion_tokens,
            usage_estimated=reply.estimated,
            cached_tokens=reply.cached_tokens,
            cost_usd=reply.cost_usd,
            latency_s=round(reply.seconds, 3),
            max_tokens=limit,
            finish_reason=reply.finish_reason,
            response_format=RESPONSE_FORMATS[self._format_level] if schema else None,
        )
        return reply

    # -- the call, with capability fallbacks and errors in one place ---------

    def _create(
        self, request: dict[str, Any], limit: int, schema: dict[str, Any] | None, reply_format: str | None = None
    ) -> Any:
        while True:
            attempt = dict(request, **{self._token_param: limit})
            if not self._tool_choice_ok:
                attempt.pop("tool_choice", None)
            if schema:
                attempt.update(self._response_format(schema, request["messages"], reply_format))
            try:
                return self._within_time_limit(functools.partial(self._send, attempt))
            except json.JSONDecodeError as err:  # the SDK read a 200 whose body is not JSON
                raise self._not_json(err) from None
            except RecursionError:  # a body nested thousands deep: the json module gives up
                raise ModelUnavailable(
                    "api_error", f"{self.settings.server()} sent a reply nested too deeply to read"
                ) from None
            except Exception as err:  # the SDK's error classes are looked up only once one is raised
                openai = openai_sdk()
                if not isinstance(err, openai.OpenAIError):
                    raise
                refused = (openai.BadRequestError, openai.UnprocessableEntityError, openai.InternalServerError)
                if not (isinstance(err, refused) and self._fall_back(err, schema is not None)):
                    raise self._explain(err, request["model"]) from err

    def _send(self, attempt: dict[str, Any]) -> Any:
        return self.client.chat.completions.create(**attempt, timeout=self._request_timeout())

    def _response_format(
        self, schema: dict[str, Any], messages: list[dict[str, Any]], reply_format: str | None
    ) -> dict[str, Any]:
        """The request's response_format; below json_schema, also the reply's shape spelled out in the system prompt."""
        kind = RESPONSE_FORMATS[self._format_level]
        if kind == "json_schema":
            return {"response_format": {"type": "json_schema", "json_schema": schema}}
        spelled: dict[str, Any] = {}
        if reply_format and messages and messages[0]["role"] == "system":
            spelled["messages"] = [system(f"{messages[0]['content']}\n{reply_format}"), *messages[1:]]
        if kind == "json_object":
            return {"response_format": {"type": "json_object"}, **spelled}
        return spelled

    def _as_sent(
        self, messages: list[dict[str, Any]], schema: dict[str, Any] | None, reply_format: str | None
    ) -> list[dict[str, Any]]:
        """The messages as the server gets them at the current capability level (for the screen and the trace)."""
        if not schema:
            return messages
        return self._response_format(schema, messages, reply_format).get("messages", messages)

    def _fall_back(self, err: Exception, structured: bool) -> bool:
        """Step down one capability the server refused; False if nothing is left to drop."""
        text = str(err).lower()
        if (
            structured
            and self._format_level < len(RESPONSE_FORMATS) - 1
            and ("response_format" in text or "json_schema" in text or "json_object" in text)
        ):
            old = RESPONSE_FORMATS[self._format_level]
            self._format_level += 1
            new = RESPONSE_FORMATS[self._format_level]
            self.warn(f"server refused response_format {old}; using {new} for the rest of the run")
            return True
        if self._tool_choice_ok and "tool_choice" in text:
            self._tool_choice_ok = False
            self.warn("server refused tool_choice; leaving it out for the rest of the run")
            return True
        if self._token_param == "max_tokens" and "max_tokens" in text and "max_completion_tokens" in text:
            self._token_param = "max_completion_tokens"
            self.warn("server wants max_completion_tokens; switching for the rest of the run")
            return True
        return False

    def _within_time_limit(self, call: Callable[[], Any]) -> Any:
        """``call()``, abandoned when the run's time limit passes, even in the middle of the SDK's retries.

        The SDK gives each retry of a timed-out request the full timeout again, so a
        server that accepts and never answers would outlast --timeout several times
        over. With a limit set, the call runs in a daemon thread and is waited on
        only until the deadline.
        """
        s = self.settings
        if s.timeout is None:
            return call()
        outcome: dict[str, Any] = {}
        done = threading.Event()

        def run() -> None:
            try:
                outcome["reply"] = call()
            except BaseException as err:  # handed to the waiting thread, which raises it
                outcome["error"] = err
            finally:
                done.set()

        # The name carries the run id, so the SDK's retry messages from this thread are told apart.
        threading.Thread(target=run, name=f"model-call {self.trace.run_id}", daemon=True).start()
        if not done.wait(max(0.0, s.timeout - self.elapsed())):
            self.trace.event("warning", message="a call was abandoned at the time limit; its tokens are not counted")
            if self._owns_client and self._client is not None:  # closing it ends the SDK's retries of that call
                self._client.close()
                self._client = None
            raise BudgetExhausted("timeout", f"{s.timeout:g}s time limit reached while waiting on {s.server()}")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["reply"]

    def _not_json(self, err: json.JSONDecodeError) -> StopRun:
        where = self.settings.server()
        if err.doc.lstrip()[:1] == "<":  # a web page: the address points at a website, not at an API
            return ModelUnavailable(
                "config_error", f"{where} answered with a web page, not JSON: is OPENAI_BASE_URL an API (often .../v1)?"
            )
        return ModelUnavailable(
            "api_error", f"{where} sent a reply that is not valid JSON ({err.msg} at char {err.pos})"
        )

    def _request_timeout(self) -> float:
        if self.settings.timeout is None:
            return REQUEST_TIMEOUT_S
        return max(1.0, min(REQUEST_TIMEOUT_S, self.settings.timeout - self.elapsed()))

    def _explain(self, err: Any, model: str) -> StopRun:
        """Turn any SDK error into one clear line and a stop reason (config_error: exit 2; api_error: exit 1)."""
        openai, where, s = openai_sdk(), self.settings.server(), self.settings
        detail = first_line(redact(getattr(err, "message", None) or str(err), s.api_key))  # servers echo keys
        status = getattr(err, "status_code", None)
        fix, retried = "config_error", f"even after {SDK_MAX_RETRIES} retries"  # fix: the user must change something
        if isinstance(err, openai.AuthenticationError):
            return ModelUnavailable(fix, f"{where} rejected the API key (401): check OPENAI_API_KEY")
        if isinstance(err, openai.PermissionDeniedError):
            return ModelUnavailable(fix, f"{where} denied access (403): {detail}")
        if isinstance(err, openai.NotFoundError):
            return ModelUnavailable(
                fix, f"model '{model}' was not found at {where} (404): check --model or OPENAI_MODEL"
            )
        if isinstance(err, openai.APITimeoutError):
            if s.timeout is not None and self.elapsed() >= s.timeout:
                return BudgetExhausted("timeout", f"{s.timeout:g}s time limit reached during a call")
            return ModelUnavailable("api_error", f"{where} did not answer in time, {retried}")
        if isinstance(err, openai.APIConnectionError):
            if type(err.__cause__).__name__ not in ("ConnectError", "ConnectTimeout", "ProxyError", "NoneType"):
                return ModelUnavailable("api_error", f"the connection to {where} broke mid-reply, {retried}")
            return ModelUnavailable(fix, f"cannot reach {where}: is the server running and OPENAI_BASE_URL right?")
        if isinstance(err, openai.RateLimitError):
            if "quota" in detail.lower():
                return ModelUnavailable(fix, f"{where}: quota exhausted (429): {detail}")
            return ModelUnavailable("api_error", f"{where} is rate limiting (429) {retried}")
        if isinstance(err, (openai.BadRequestError, openai.UnprocessableEntityError)):
            return ModelUnavailable(fix, f"{where} refused the request ({status}): {detail}")
        if status in (405, 501):
            return ModelUnavailable(
                fix, f"{where} does not serve chat completions ({status}): is it OpenAI-compatible?"
            )
        if status is not None:
            return ModelUnavailable("api_error", f"{where} failed ({status}) {retried}: {detail}")
        return ModelUnavailable("api_error", f"{where}: {detail}")

    # -- accounting ---------------------------------------------------------

    def _account(
        self, role: str, model: str, messages: list[dict[str, Any]], completion: Any, seconds: float, limit: int
    ) -> Reply:
        if isinstance(completion, str):  # the SDK hands back the text of a body that was not JSON
            raise self._not_json(json.JSONDecodeError("not JSON", completion, 0))
        if not getattr(completion, "choices", None):
            raise ModelUnavailable(
                "config_error", f"{self.settings.server()} answered without any choices: is it OpenAI-compatible?"
            )
        choice = completion.choices[0]
        content = clean_text(choice.message.content or "")
        refusal = getattr(choice.message, "refusal", None)
        if refusal and not content:  # the model declined: say so, rather than pass on an empty reply silently
            self.warn(f"the {role}'s model refused: {first_line(redact(str(refusal)), 120)}")
        tool_calls = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.function.name, "arguments": clean_text(c.function.arguments or "")},
            }
            for c in getattr(choice.message, "tool_calls", None) or []
        ]
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if tool_calls:
            message["tool_calls"] = tool_calls
        usage = getattr(completion, "usage", None)
        cached = cached_prompt_tokens(usage)
        if usage is not None and usage.prompt_tokens:
            prompt_tokens, completion_tokens, estimated = usage.prompt_tokens, usage.completion_tokens or 0, False
        else:  # llama.cpp and some proxies may omit usage: guess high, and say so
            prompt_tokens = estimate_tokens(messages)
            completion_tokens = estimate_text_tokens(content + json.dumps(tool_calls))
            estimated = True
        price = price_for(model)
        cost = (
            None
            if price is None
            else prompt_tokens * price.input_per_token + completion_tokens * price.output_per_token
        )
        self.ledger.add(role, prompt_tokens, completion_tokens, cost, seconds, estimated, cached)
        self._check_budget_share()
        return Reply(
            role,
            model,
            content,
            message,
            tool_calls,
            prompt_tokens,
            completion_tokens,
            estimated,
            cost,
            seconds,
            choice.finish_reason,
            limit,
            cached,
        )

    def _calibrate(self, guess: int, reply: Reply) -> None:
        """When the server counted more prompt tokens than the guess, guess higher from now on."""
        if not reply.estimated and reply.prompt_tokens > guess * self._estimate_scale:
            self._estimate_scale = 1.1 * reply.prompt_tokens / guess
            self.display.note(
                f"the server counted {reply.prompt_tokens} prompt tokens, more than the "
                f"~{guess} estimated: estimates are scaled by {self._estimate_scale:.2f} from now on"
            )

    def _check_budget_share(self) -> None:
        used, cap = self.ledger.total_tokens, self.settings.max_tokens
        if used > cap:  # only if a server counted far more prompt tokens than estimated
            self.warn(f"token budget exceeded ({used} > {cap}): the prompt estimate was low")
        elif not self._warned_80 and used >= TOKEN_WARNING_SHARE * cap:
            self._warned_80 = True
            self.warn(f"{used} of {cap} tokens used ({used / cap:.0%} of the budget)")

    def warn(self, text: str) -> None:
        """A warning on screen and in the trace."""
        self.display.warn(text)
        self.trace.event("warning", message=text)


def cached_prompt_tokens(usage: Any) -> int:
    """``usage.prompt_tokens_details.cached_tokens``, which only some servers send; 0 when absent."""
    details = getattr(usage, "prompt_tokens_details", None)
    return getattr(details, "cached_tokens", None) or 0


@contextmanager
def sdk_retries_shown(display: Display, trace: Trace) -> Iterator[None]:
    """Make the SDK's own retry messages visible: in --verbose, and always in the trace."""

    here = threading.current_thread().name

    class _Forward(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.threadName != here and not str(record.threadName).endswith(trace.run_id):
                return  # another run's call, or one abandoned at an earlier run's time limit
            message = record.getMessage()
            if "retry" in message.lower():
                display.note(f"openai SDK: {message}")
                trace.event("warning", message=f"openai SDK: {message}")

    logger = logging.getLogger("openai")
    handler, old_level = _Forward(level=logging.INFO), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def request_role(request: dict[str, Any]) -> str | None:
    """Which agent sent a request, from the header the gateway adds."""
    return (request.get("extra_headers") or {}).get(ROLE_HEADER)


def openai_client(settings: Settings) -> Any:
    """The real SDK client for these settings; thread-safe, so a batch shares one."""
    return openai_sdk().OpenAI(
        api_key=settings.api_key or "not-needed",  # local servers ignore the key
        base_url=settings.base_url,
        max_retries=SDK_MAX_RETRIES,
        timeout=REQUEST_TIMEOUT_S,
    )
