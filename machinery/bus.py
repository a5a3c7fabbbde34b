"""The message bus agents-as-services talk over: NATS JetStream (``Bus``), or an in-process twin (``LocalBus``).

Requests  one JetStream stream, ``AGENT_REQUESTS``, on the subjects ``agents.<role>.requests``,
          kept as a work queue: a message is gone once a service acknowledges it. Every copy
          of a role pulls from one durable consumer named after the role, one request at a
          time, so a second worker started anywhere shares the queue at once.
Replies   core NATS, on the sender's own subject ``agents.replies.<inbox>``. Before a service
          acknowledges a request it stores the reply in the key-value bucket ``agent_replies``
          under the request's message id: the reply's durable copy.
Headers   ``Nats-Msg-Id`` (the message id: JetStream drops a second publish of it within two
          minutes, and a service answers it again from the store instead of running the agent
          twice), ``Reply-Subject``, ``traceparent`` (the W3C trace context), and on replies
          ``Causation-Id`` (the request's id), ``Agent-Error`` (refused or failed), ``Agent-Replayed``.

So a request is answered once however often it arrives: a service killed before it
acknowledged is redelivered to another copy after ``ack_wait``; a resumed orchestrator
that sends a request again gets the stored reply. nats-py is asynchronous; ``Bus`` runs
it on an event loop in a background thread and gives the rest of the kit plain calls.
nats is imported only when a ``Bus`` connects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import queue
import re
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from machinery import telemetry

log = logging.getLogger("agents.bus")

STREAM = "AGENT_REQUESTS"
REPLIES = "agent_replies"  # key-value bucket: message id -> the reply, so a request is answered once
REPLIES_KEPT_S = 7 * 24 * 3600  # how long stored replies (and so resumable runs) are kept
MAX_BYTES = 512 * 1024  # the largest message either side accepts; the server's own default limit is 1 MiB
NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # a role or an inbox: one subject token
MESSAGE_ID = re.compile(r"^[A-Za-z0-9_=.-]{1,128}$")  # also a valid key-value key
ACK_WAIT_S = 30.0  # a request not acknowledged this long after delivery goes to another copy
MAX_DELIVER = 5  # deliveries of one request before JetStream gives up on it
BROKER_GRACE_S = 5.0  # disconnected this long while waiting for a reply: the broker is gone
POLL_S = 2.0  # while waiting, look in the reply store this often (a reply sent to an earlier inbox is there)
# nats-py gives up reconnecting after 60 tries and pings every 2 minutes; we retry forever
# (a request still fails at its own deadline) and notice a hung broker in about 20 s.
RECONNECT = {"reconnect_time_wait": 1, "max_reconnect_attempts": -1, "ping_interval": 10, "max_outstanding_pings": 2}
MSG_ID, REPLY_TO, CAUSE, ERROR, REPLAYED = (
    "Nats-Msg-Id",
    "Reply-Subject",
    "Causation-Id",
    "Agent-Error",
    "Agent-Replayed",
)

# A service: the request's body and headers -> the reply's body, and whether to keep it as the request's
# answer (False for an answer a later try may better: a stop at the time limit, a model server that failed).
Handler = Callable[[bytes, dict[str, str]], tuple[bytes, bool]]


class BusError(Exception):
    """The transport failed: no broker, the connection lost, a refused message."""


class BusTimeout(BusError, TimeoutError):
    """No reply in time."""


class AgentError(BusError):
    """The service refused the request, or its handler failed."""


class Refused(Exception):
    """Raised by a handler for a request it will not run: the reason goes back, and into the service's log."""


def request_subject(role: str) -> str:
    return f"agents.{role}.requests"


def check_payload(payload: Any, max_bytes: int = MAX_BYTES) -> str | None:
    """Why a message body is refused, or None: it must be bytes, small enough, and JSON."""
    if not isinstance(payload, (bytes, bytearray)):
        return f"the body must be bytes, not {type(payload).__name__}"
    if len(payload) > max_bytes:
        return f"too large ({len(payload)} > {max_bytes} bytes)"
    try:
        json.loads(payload)
    except ValueError as err:  # UnicodeDecodeError too
        return f"not valid JSON ({str(err)[:80]})"
    return None


def check_name(what: str, value: Any, pattern: re.Pattern[str] = NAME) -> None:
    if not isinstance(value, str) or not pattern.match(value):
        raise ValueError(f"invalid {what} {str(value)[:80]!r}: allowed {pattern.pattern}")


def parse_url(url: str) -> tuple[str, str, dict[str, str]]:
    """(address to connect to, address to show, credentials): a password or token never reaches the other two.

    >>> parse_url("nats://alice:s3cret@broker.lab:4333")
    ('nats://broker.lab:4333', 'nats://***@broker.lab:4333', {'user': 'alice', 'password': 's3cret'})
    >>> parse_url("nats://t0ken@10.0.0.5")[1:]
    ('nats://***@10.0.0.5:4222', {'token': 't0ken'})
    """
    parts = urlsplit(url if "://" in url else f"nats://{url}")
    try:
        where = f"{parts.scheme}://{parts.hostname}:{parts.port or 4222}"
    except ValueError:  # a port that is not a number
        raise BusError(f"not a broker address: {redact_url(url)}") from None
    auth: dict[str, str] = {}
    if parts.password is not None:
        auth = {"user": unquote(parts.username or ""), "password": unquote(parts.password)}
    elif parts.username:
        auth = {"token": unquote(parts.username)}
    return where, where.replace("://", "://***@") if auth else where, auth


def redact_url(text: str) -> str:
    """Any ``scheme://user:password@`` in ``text`` shown as ``scheme://***@``, up to the last ``@``: a
    password may hold ``/`` or ``@`` of its own.

    >>> redact_url("not a broker address: nats://alice:s3cr/et@127.0.0.1:4222 or nats://a:p@ss@h")
    'not a broker address: nats://***@127.0.0.1:4222 or nats://***@h'
    """
    return re.sub(r"(\w+://)[^\s]*@", r"\1***@", text)


class Service:
    """What ``serve`` returns: ``stop()`` ends the loop after the request in hand."""

    def __init__(self, stopping: threading.Event, done: Callable[[float], Any]):
        self._stopping, self._done = stopping, done

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        with contextlib.suppress(Exception):
            self._done(timeout)


class BusBase:
    """What both transports share: checks on what is sent, and the service's side of one request."""

    url = "in-process"

    def __init__(self, max_bytes: int = MAX_BYTES):
        self.max_bytes = max_bytes
        self.inbox = uuid.uuid4().hex  # this connection's reply subject

    def kv_get(self, bucket: str, key: str) -> bytes | None:
        raise NotImplementedError

    def kv_put(self, bucket: str, key: str, value: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Nothing to close in process."""

    def headers_for(self, role: str, payload: bytes, msg_id: str) -> dict[str, str]:
        check_name("role", role)
        check_name("message id", msg_id, MESSAGE_ID)
        reason = check_payload(payload, self.max_bytes)
        if reason:
            raise BusError(f"refusing to send to the {role}: {reason}")
        return telemetry.inject({MSG_ID: msg_id, REPLY_TO: f"agents.replies.{self.inbox}"})

    def request(self, role: str, payload: bytes, msg_id: str, timeout: float) -> tuple[bytes, dict[str, str]]:
        """Send a request and wait for its reply (only its own: replies to other ids are not taken).

        BusTimeout when none comes in ``timeout`` seconds, AgentError when the service refused
        it or failed, BusError when the broker is gone.
        """
        subject = request_subject(role)
        where = {"messaging.system": "nats", "messaging.destination.name": subject, "messaging.message.id": msg_id}
        with telemetry.span(f"send {subject}", where, kind="producer"):
            reply, headers = self.exchange(subject, payload, self.headers_for(role, payload, msg_id), timeout)
        if ERROR in headers:
            raise AgentError(f"the {role} service could not answer {msg_id}: {headers[ERROR]}")
        return reply, headers

    def exchange(
        self, subject: str, payload: bytes, headers: dict[str, str], timeout: float
    ) -> tuple[bytes, dict[str, str]]:
        raise NotImplementedError

    def serve(self, role: str, handler: Handler, ack_wait: float = ACK_WAIT_S) -> Service:
        raise NotImplementedError

    def process(
        self, role: str, payload: bytes, headers: dict[str, str], handler: Handler
    ) -> tuple[bytes, dict[str, str]]:
        """A service's step for one request, whatever it holds: refused with a logged reason, answered
        from the store if it was answered before, or handled and stored before it is acknowledged.
        Only a failure of the store itself is raised (the request is then delivered again)."""
        msg_id = headers.get(MSG_ID, "")
        out = {CAUSE: msg_id[:128]}
        reason = check_payload(payload, self.max_bytes)
        if not MESSAGE_ID.match(msg_id):
            reason = "no valid Nats-Msg-Id header"
        if reason:
            log.warning("%s: refused message %r: %s", role, msg_id[:64], reason)
            return b"", {**out, ERROR: f"refused: {reason}"}
        stored = self.kv_get(REPLIES, msg_id)
        if stored is not None:  # delivered again, or sent again by a resumed run: the same answer, no new call
            log.info("%s: %s was answered before: sending the stored reply", role, msg_id)
            return stored, {**out, REPLAYED: "1"}
        where = {"messaging.system": "nats", "messaging.operation.type": "process", "messaging.message.id": msg_id}
        with telemetry.span(f"process {request_subject(role)}", where, kind="consumer", carrier=headers):
            try:
                reply, keep = handler(payload, headers)
                if reason := check_payload(reply, self.max_bytes):
                    raise Refused(f"the reply is {reason}")
            except Refused as refusal:
                log.warning("%s: refused message %s: %s", role, msg_id, refusal)
                return b"", {**out, ERROR: f"refused: {refusal}"[:300]}
            except Exception as err:  # the agent failed: say so, and keep serving
                log.exception("%s: failed on %s", role, msg_id)
                return b"", {**out, ERROR: f"{type(err).__name__}: {err}"[:300]}
        if keep:
            self.kv_put(REPLIES, msg_id, bytes(reply))
        return bytes(reply), out


class Bus(BusBase):
    """NATS JetStream. Every nats-py call runs on one event loop in a background thread."""

    def __init__(self, max_bytes: int = MAX_BYTES):
        super().__init__(max_bytes)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="nats-bus", daemon=True)
        self._thread.start()
        self._nc: Any = None
        self._js: Any = None
        self._kvs: dict[str, Any] = {}
        self._waiting: dict[str, asyncio.Future[tuple[bytes, dict[str, str]]]] = {}
        self._inbox_sub: Any = None
        self._services: list[Future[Any]] = []
        self._closing = False

    @property
    def connected(self) -> bool:
        return bool(self._nc is not None and self._nc.is_connected)

    def _run(self, coro: Coroutine[Any, Any, Any], timeout: float, what: str) -> Any:
        """Run ``coro`` on the bus's loop and wait for it; nats-py's errors become BusError and BusTimeout."""
        import nats.errors

        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except (FutureTimeout, asyncio.TimeoutError):  # our wait, or a timeout inside the coroutine
            future.cancel()
            state = "" if self.connected else ", not connected to the broker"
            raise BusTimeout(f"{what}: no answer within {timeout:g}s{state}") from None
        except nats.errors.Error as err:
            raise BusError(f"{what} failed: {type(err).__name__}: {redact_url(str(err))}") from None

    @classmethod
    def connect(cls, url: str, timeout: float = 2.0, max_bytes: int = MAX_BYTES) -> Bus:
        """Connect, or BusError in about ``timeout`` seconds, in one line that shows no credential."""
        import importlib.util

        if importlib.util.find_spec("nats") is None:  # an optional package: say how to get it, not a traceback
            raise BusError("--broker needs nats-py, which is not installed: pip install -r requirements-nats.txt")
        bus = cls(max_bytes)
        try:
            bus._run(bus._connect(url, timeout), timeout + 5, f"connecting to {redact_url(url)}")
        except BaseException:
            bus._stop_loop()
            raise
        return bus

    async def _connect(self, url: str, timeout: float) -> None:
        import nats.errors
        from nats.aio.client import Client

        address, self.url, auth = parse_url(url)
        secrets = [value for value in auth.values() if value]

        def scrub(text: str) -> str:
            for secret in secrets:
                text = text.replace(secret, "***")
            return redact_url(text.splitlines()[0] if text else text)

        errors: list[str] = []

        async def on_error(err: Exception) -> None:  # instead of nats-py's traceback per attempt
            said = scrub(f"{type(err).__name__}: {err}")
            if self._js is not None and errors[-1:] != [said]:  # once per outage; before the first connect,
                log.warning("nats %s: %s", self.url, said)  # the one line of BusError says it all
            errors.append(said)

        def note(event: str) -> Callable[[], Coroutine[Any, Any, None]]:
            async def callback() -> None:
                if event == "reconnected":
                    errors.clear()  # the next outage is said again
                if self._js is not None and not self._closing:
                    log.warning("nats %s: %s", self.url, event)

            return callback

        events = {"error_cb": on_error, "disconnected_cb": note("disconnected"), "reconnected_cb": note("reconnected")}
        self._nc = Client()
        try:  # nats-py's first connect retries for minutes unless it is given a deadline
            await asyncio.wait_for(self._nc.connect(address, **auth, **events, **RECONNECT), timeout)
        except (asyncio.TimeoutError, OSError, nats.errors.Error) as err:
            with contextlib.suppress(Exception):
                await self._nc.close()
            seen = "; ".join(list(dict.fromkeys(errors))[:2]) or scrub(f"{type(err).__name__}: {err}")
            raise BusError(f"cannot connect to the broker at {self.url} within {timeout:g}s ({seen})") from None
        self._js = self._nc.jetstream(timeout=max(timeout, 5.0))
        try:
            await self._js.add_stream(
                name=STREAM,
                subjects=[request_subject("*")],
                retention="workqueue",
                storage="file",
                duplicate_window=120.0,
            )
        except nats.errors.Error as err:
            raise BusError(
                f"the broker at {self.url} has no usable JetStream (is it started with -js?): {err}"
            ) from None
        self._inbox_sub = await self._nc.subscribe(f"agents.replies.{self.inbox}", cb=self._on_reply)

    def close(self) -> None:
        self._closing = True
        for service in self._services:
            service.cancel()
        if self._nc is not None and (self._nc.is_connected or self._nc.is_reconnecting):
            with contextlib.suppress(Exception):
                self._run(self._nc.close(), 5, "closing")
        self._stop_loop()

    def _stop_loop(self) -> None:
        async def cancel_the_rest() -> None:  # nats-py's own tasks, so none is left to a closed loop
            rest = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(cancel_the_rest(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()

    def publish(self, subject: str, payload: bytes, headers: dict[str, str]) -> bool:
        """Publish to JetStream as given, unchecked (tests send bad messages this way); False for a duplicate."""
        ack = self._run(self._js.publish(subject, payload, headers=headers), 10, f"publishing to {subject}")
        return not ack.duplicate

    # -- the key-value store ---------------------------------------------------

    async def _kv(self, bucket: str) -> Any:
        if bucket not in self._kvs:
            from nats.js.errors import BucketNotFoundError

            try:
                self._kvs[bucket] = await self._js.key_value(bucket)
            except BucketNotFoundError:
                self._kvs[bucket] = await self._js.create_key_value(bucket=bucket, ttl=REPLIES_KEPT_S)
        return self._kvs[bucket]

    async def _kv_get(self, bucket: str, key: str) -> bytes | None:
        from nats.js.errors import KeyNotFoundError

        try:
            return (await (await self._kv(bucket)).get(key)).value
        except KeyNotFoundError:  # deleted keys too
            return None

    def _online(self, what: str) -> None:
        if not self.connected:  # nats-py would hold the request until its own timeout
            raise BusError(f"{what}: not connected to the broker at {self.url}")

    def kv_get(self, bucket: str, key: str) -> bytes | None:
        self._online(f"reading {bucket}/{key}")
        return self._run(self._kv_get(bucket, key), 10, f"reading {bucket}/{key}")

    def kv_put(self, bucket: str, key: str, value: bytes) -> None:
        async def put() -> None:
            await (await self._kv(bucket)).put(key, bytes(value))

        self._online(f"writing {bucket}/{key}")
        self._run(put(), 10, f"writing {bucket}/{key}")

    # -- the orchestrator's side -----------------------------------------------

    async def _on_reply(self, msg: Any) -> None:
        waiting = self._waiting.get((msg.headers or {}).get(CAUSE, ""))
        if waiting is not None and not waiting.done():
            waiting.set_result((msg.data, dict(msg.headers)))
        # else: a reply to a request this connection is not waiting for (a late duplicate): dropped

    def exchange(
        self, subject: str, payload: bytes, headers: dict[str, str], timeout: float
    ) -> tuple[bytes, dict[str, str]]:
        what = f"the request {headers[MSG_ID]} to {subject}"
        return self._run(self._exchange(subject, payload, headers, timeout), timeout + 15, what)

    async def _exchange(
        self, subject: str, payload: bytes, headers: dict[str, str], timeout: float
    ) -> tuple[bytes, dict[str, str]]:
        import nats.errors

        msg_id = headers[MSG_ID]
        waiting = self._waiting[msg_id] = self._loop.create_future()
        deadline = self._loop.time() + timeout
        try:
            try:
                ack = await self._js.publish(subject, payload, headers=headers)
            except (nats.errors.Error, asyncio.TimeoutError) as err:
                raise BusError(
                    f"lost the broker at {self.url}: the request was not accepted ({type(err).__name__})"
                ) from None
            if ack.duplicate and (stored := await self._kv_get(REPLIES, msg_id)) is not None:
                return stored, {CAUSE: msg_id, REPLAYED: "1"}  # sent before and answered: no new call
            down_since: float | None = None
            while True:
                left = deadline - self._loop.time()
                if left <= 0:
                    raise BusTimeout(f"no reply to {msg_id} on {subject} within {timeout:g}s")
                with contextlib.suppress(asyncio.TimeoutError):
                    return await asyncio.wait_for(asyncio.shield(waiting), min(left, POLL_S))
                if not self._nc.is_connected:
                    down_since = down_since or self._loop.time()
                    if self._loop.time() - down_since > BROKER_GRACE_S:
                        raise BusError(f"lost the broker at {self.url} while waiting for {msg_id}")
                    continue
                down_since = None
                stored = await self._kv_get(REPLIES, msg_id)  # answered to an earlier inbox, or lost in an outage
                if stored is not None:
                    return stored, {CAUSE: msg_id, REPLAYED: "1"}
        finally:
            self._waiting.pop(msg_id, None)

    # -- the service's side ----------------------------------------------------

    def serve(self, role: str, handler: Handler, ack_wait: float = ACK_WAIT_S) -> Service:
        """Answer ``role``'s requests with ``handler``, one at a time, until ``stop()``."""
        check_name("role", role)
        stopping = threading.Event()
        subscription = self._run(self._consumer(role, ack_wait), 15, f"joining the {role} queue")
        loop = asyncio.run_coroutine_threadsafe(
            self._serve(role, subscription, handler, ack_wait, stopping), self._loop
        )
        self._services.append(loop)
        return Service(stopping, loop.result)

    async def _consumer(self, role: str, ack_wait: float) -> Any:
        """The durable pull consumer every copy of ``role`` shares (made by the first copy)."""
        from nats.js.errors import BadRequestError

        try:
            await self._js.add_consumer(
                STREAM,
                durable_name=role,
                filter_subject=request_subject(role),
                ack_wait=ack_wait,
                max_deliver=MAX_DELIVER,
            )
        except BadRequestError as err:  # it exists with another ack_wait: join it as it is
            log.warning("%s: joining the existing queue as it is (%s)", role, err.description)
        return await self._js.pull_subscribe_bind(durable=role, stream=STREAM)

    async def _serve(
        self, role: str, subscription: Any, handler: Handler, ack_wait: float, stopping: threading.Event
    ) -> None:
        import nats.errors

        while not stopping.is_set():
            try:
                msg = (await subscription.fetch(1, timeout=1.0))[0]
            except nats.errors.TimeoutError:
                continue  # no work
            except Exception as err:  # the broker is away: wait for the reconnect
                log.warning("%s: fetching failed: %s", role, type(err).__name__)
                await asyncio.sleep(1.0)
                continue
            try:
                await self._handle(role, msg, handler, ack_wait)
            except Exception as err:  # never let one message end the loop; unacknowledged, it comes back
                log.warning("%s: could not finish a message: %s: %s", role, type(err).__name__, err)
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()

    async def _handle(self, role: str, msg: Any, handler: Handler, ack_wait: float) -> None:
        async def still_working() -> None:  # a slow model call must not look like a dead service
            while True:
                await asyncio.sleep(ack_wait / 3)
                with contextlib.suppress(Exception):
                    await msg.in_progress()

        headers = {str(k): str(v) for k, v in (msg.headers or {}).items()}
        beat = asyncio.create_task(still_working())
        try:
            reply, reply_headers = await asyncio.to_thread(self.process, role, msg.data, headers, handler)
        finally:
            beat.cancel()
        to = headers.get(REPLY_TO, "")
        if to.startswith("agents.replies.") and NAME.match(to.removeprefix("agents.replies.")):
            await self._nc.publish(to, reply, headers=reply_headers)
        else:
            log.warning("%s: no valid Reply-Subject on %r: the reply is stored, not sent", role, headers.get(MSG_ID))
        await msg.ack()


class FileKV:
    """A key-value store in a folder, one file a key: where runs without a broker keep their state."""

    def __init__(self, folder: Path):
        self.folder = folder

    def get(self, bucket: str, key: str) -> bytes | None:
        check_name("key", key, MESSAGE_ID)
        path = self.folder / bucket / key
        return path.read_bytes() if path.exists() else None

    def put(self, bucket: str, key: str, value: bytes) -> None:
        check_name("key", key, MESSAGE_ID)
        path = self.folder / bucket / key
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{key}.{os.getpid()}.{threading.get_ident()}")
        partial.write_bytes(bytes(value))
        partial.replace(path)  # atomic: a crash leaves the old value or the new one, never half


class LocalBus(BusBase):
    """The same rules in one process: a queue per role, a thread per service, a dict (or a folder) as the store.

    What it cannot show: redelivery after a service dies (a thread does not die alone).
    """

    def __init__(self, store: FileKV | None = None, max_bytes: int = MAX_BYTES):
        super().__init__(max_bytes)
        self.store = store
        self._memory: dict[tuple[str, str], bytes] = {}
        self._queues: dict[str, queue.Queue[tuple[bytes, dict[str, str]]]] = {}
        self._seen: dict[str, float] = {}
        self._waiting: dict[str, Future[tuple[bytes, dict[str, str]]]] = {}
        self._lock = threading.Lock()

    def kv_get(self, bucket: str, key: str) -> bytes | None:
        return self.store.get(bucket, key) if self.store else self._memory.get((bucket, key))

    def kv_put(self, bucket: str, key: str, value: bytes) -> None:
        if self.store:
            self.store.put(bucket, key, value)
        else:
            self._memory[(bucket, key)] = bytes(value)

    def _queue(self, subject: str) -> queue.Queue[tuple[bytes, dict[str, str]]]:
        with self._lock:
            return self._queues.setdefault(subject, queue.Queue())

    def publish(self, subject: str, payload: bytes, headers: dict[str, str]) -> bool:
        msg_id, now = headers.get(MSG_ID, ""), time.monotonic()
        with self._lock:
            if msg_id and now - self._seen.get(msg_id, -1e9) < 120.0:
                return False  # a duplicate within the window: dropped, as JetStream does
            self._seen[msg_id] = now
        self._queue(subject).put((bytes(payload), dict(headers)))
        return True

    def exchange(
        self, subject: str, payload: bytes, headers: dict[str, str], timeout: float
    ) -> tuple[bytes, dict[str, str]]:
        msg_id = headers[MSG_ID]
        waiting = self._waiting[msg_id] = Future()
        try:
            if not self.publish(subject, payload, headers) and (stored := self.kv_get(REPLIES, msg_id)) is not None:
                return stored, {CAUSE: msg_id, REPLAYED: "1"}
            return waiting.result(timeout)
        except FutureTimeout:
            raise BusTimeout(f"no reply to {msg_id} on {subject} within {timeout:g}s") from None
        finally:
            self._waiting.pop(msg_id, None)

    def serve(self, role: str, handler: Handler, ack_wait: float = ACK_WAIT_S) -> Service:
        check_name("role", role)
        stopping, requests = threading.Event(), self._queue(request_subject(role))

        def loop() -> None:
            while not stopping.is_set():
                try:
                    payload, headers = requests.get(timeout=0.2)
                except queue.Empty:
                    continue
                if not headers:  # a copy is stopping: wake up, and look at the flag
                    continue
                reply = self.process(role, payload, headers, handler)
                waiting = self._waiting.get(reply[1][CAUSE])
                if waiting is not None:
                    with contextlib.suppress(Exception):  # another copy answered first
                        waiting.set_result(reply)

        def done(timeout: float) -> None:
            requests.put((b"", {}))
            thread.join(timeout)

        thread = threading.Thread(target=loop, name=f"local-{role}", daemon=True)
        thread.start()
        return Service(stopping, done)


def open_bus(url: str | None, store: Path | None = None, timeout: float = 2.0) -> BusBase:
    """A broker's bus when ``url`` is given, else the in-process one (keeping its store in ``store``)."""
    if url:
        return Bus.connect(url, timeout)
    return LocalBus(FileKV(store) if store else None)
