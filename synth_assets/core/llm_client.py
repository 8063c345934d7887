"""Sends a batch's chat requests to an OpenAI-compatible endpoint without losing a paid answer.

- Bounded concurrency (a fixed pool of workers), requests-per-minute and tokens-per-minute
  limits (token buckets), a timeout per request.
- Retries of 429, 5xx, timeouts and connection errors with exponential backoff and full jitter,
  never sooner than the server's ``Retry-After``.
- A circuit breaker: after ``circuit_breaker_failures`` requests in a row fail for good, the
  batch stops with :class:`CircuitOpenError`; every answer already received is in the cache, so
  the re-run resumes where it stopped.
- The cache first: a cached key is never sent. In replay mode nothing is sent at all, and a
  missing key is an error that lists the missing keys.
- A spend cap: before each request the worst case (prompt + ``max_tokens``) is reserved, and a
  request that could pass the cap is not sent; its slots end as ``budget_exhausted`` rows.
"""

from __future__ import annotations

import asyncio
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import openai

try:  # openai 3.x speaks httpx2; openai 2.x speaks httpx
    import httpx2 as _httpx
except ImportError:  # pragma: no cover - depends on the installed openai
    import httpx as _httpx

try:  # a faster event loop when installed (less CPU per request on the loop); asyncio's otherwise
    from uvloop import new_event_loop as _new_event_loop
except ImportError:  # pragma: no cover - depends on the environment
    _new_event_loop = None

from synth_assets.core.llm_cache import AnswerCache, CachedAnswer
from synth_assets.core.pricing import Price
from synth_assets.core.prompts import GenerationRequest
from synth_assets.core.task_config import LlmConfig

BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 60.0
PROGRESS_EVERY_SECONDS = 5.0
CHARS_PER_TOKEN = 4  # rough size of a token, for estimates made before the endpoint reports usage
MISSING_KEYS_SHOWN = 20
CHAT_PATH = "/chat/completions"


class LlmError(RuntimeError):
    """Generation through the endpoint cannot go on; the message says why and what to do."""


class CircuitOpenError(LlmError):
    pass


class ReplayMissError(LlmError):
    pass


class StructuredOutputUnsupported(LlmError):
    """The endpoint rejects ``response_format`` json_schema: retry the batch in JSON mode."""


@dataclass(frozen=True)
class Failure:
    """A request that got no answer; its example slots become rejected rows with this reason."""

    reason: str  # request_failed | budget_exhausted
    detail: str


@dataclass
class RunStats:
    requests: int = 0
    from_cache: int = 0
    sent: int = 0
    retries: int = 0
    failed: int = 0
    skipped_for_budget: int = 0
    cost_usd: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    started: float = field(default_factory=time.monotonic)

    def summary(self) -> dict:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return {
            "requests": self.requests,
            "from_cache": self.from_cache,
            "sent": self.sent,
            "retries": self.retries,
            "failed": self.failed,
            "skipped_for_budget": self.skipped_for_budget,
            "spent_usd": round(self.cost_usd, 6),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "requests_per_second": round(self.sent / elapsed, 2),
        }


def estimate_tokens(text: str) -> int:
    return -(-len(text) // CHARS_PER_TOKEN)


def prompt_tokens_of(request: GenerationRequest) -> int:
    return sum(estimate_tokens(message["content"]) for message in request.messages)


class _TokenBucket:
    """``per_minute`` units refilled continuously; ``take`` waits until enough are there."""

    def __init__(self, per_minute: int):
        self.capacity = float(per_minute)
        self.level = float(per_minute)
        self.rate = per_minute / 60.0
        self.stamp = time.monotonic()

    def wait_time(self, amount: float) -> float:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        needed = min(amount, self.capacity) - self.level
        return 0.0 if needed <= 0 else needed / self.rate

    def take(self, amount: float) -> None:
        self.level -= min(amount, self.capacity)


class _Limits:
    def __init__(self, llm: LlmConfig):
        self.requests = _TokenBucket(llm.requests_per_minute)
        self.tokens = _TokenBucket(llm.tokens_per_minute)
        self.lock = asyncio.Lock()

    async def acquire(self, tokens: int) -> None:
        async with self.lock:
            while (delay := max(self.requests.wait_time(1), self.tokens.wait_time(tokens))) > 0:
                await asyncio.sleep(delay)
            self.requests.take(1)
            self.tokens.take(tokens)


def _retry_after(error: openai.APIStatusError) -> float | None:
    headers = error.response.headers
    if (millis := headers.get("retry-after-ms")) is not None:
        try:
            return float(millis) / 1000
        except ValueError:
            pass
    try:
        return float(headers.get("retry-after"))
    except (TypeError, ValueError):
        return None


def _is_retryable(error: Exception) -> bool:
    if isinstance(error, openai.APITimeoutError | openai.APIConnectionError | openai.RateLimitError):
        return True
    return isinstance(error, openai.APIStatusError) and error.status_code >= 500


def _http_client(llm: LlmConfig):
    """A connection pool sized to the worker pool, on aiohttp when it is installed.

    One keep-alive connection per worker: no request waits for a connection and none is torn
    down and reopened between requests (httpx's default keeps only 100 idle ones). aiohttp
    (``openai[aiohttp]``) costs the event loop about half the CPU per request of httpx's own
    transport; without it the httpx pool is used.
    """
    limits = _httpx.Limits(max_connections=llm.concurrency, max_keepalive_connections=llm.concurrency)
    try:
        return openai.DefaultAioHttpClient(limits=limits, timeout=llm.timeout_seconds)
    except (RuntimeError, ImportError, AttributeError):  # aiohttp not installed
        return openai.DefaultAsyncHttpxClient(limits=limits, timeout=llm.timeout_seconds)


def _completion(http: _httpx.Response) -> tuple[dict, dict, dict | None]:
    """(choice, message, usage) of a chat completion body, read as plain JSON."""
    try:
        data = http.json()
        choice = data["choices"][0]
        return choice, choice["message"], data.get("usage")
    except (ValueError, LookupError, TypeError, AttributeError) as error:
        raise openai.APIResponseValidationError(
            http, http.text[:1000], message=f"the endpoint's answer is not a chat completion ({type(error).__name__}: {error})"
        ) from None


def _describe(error: Exception) -> str:
    if isinstance(error, openai.APIStatusError):
        return f"HTTP {error.status_code}: {error.message}"
    return f"{type(error).__name__}: {error}"


class _CacheWriter:
    """Writes each answer to the cache the moment it arrives, on a thread of its own.

    The event loop only hands the answer over (a queue put), so SQLite's commit and its
    occasional WAL checkpoint (milliseconds, with an fsync) never stall the responses of the
    other requests. Answers are written one by one in arrival order, each committed on its own
    as before: a crash loses only the requests in flight and the answers of the last instant.
    ``close`` waits until every answer handed over is written; a failed write is raised by the
    next ``put`` and by ``close``.
    """

    def __init__(self, cache: AnswerCache):
        self.cache = cache
        self.error: BaseException | None = None
        self._queue: queue.SimpleQueue[CachedAnswer | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write, name="llm-cache-writer", daemon=True)
        self._thread.start()

    def check(self) -> None:
        """Raise the failed write, if any: nothing more is sent once the cache cannot take answers."""
        if self.error is not None:
            raise self.error

    def put(self, answer: CachedAnswer) -> None:
        self.check()
        self._queue.put(answer)

    def _write(self) -> None:
        while (answer := self._queue.get()) is not None:
            if self.error is None:
                try:
                    self.cache.put(answer)
                except BaseException as error:  # noqa: BLE001 - handed to the loop's thread
                    self.error = error

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error


class _Run:
    def __init__(self, client, llm: LlmConfig, cache: _CacheWriter, price: Price, budget_usd: float, stats: RunStats, progress):
        self.client = client
        self.llm = llm
        self.cache = cache
        self.price = price
        self.budget_usd = budget_usd
        self.progress = progress
        self.limits = _Limits(llm)
        self.stats = stats
        self.reserved_usd = 0.0
        self.consecutive_failures = 0
        self.breaker_reason = ""
        self.results: dict[str, CachedAnswer | Failure] = {}
        self.last_report = time.monotonic()

    async def _call(self, request: GenerationRequest) -> CachedAnswer:
        # The raw POST: the body is already plain JSON, so the SDK's per-request TypedDict
        # transform of messages and schema, and its pydantic model of the answer, are skipped
        # (a third of the client's CPU per request). Status errors, timeouts and connection
        # errors are raised as the same openai exceptions as by chat.completions.create.
        http = await self.client.post(CHAT_PATH, cast_to=_httpx.Response, body={"messages": request.messages, **request.params})
        choice, message, usage = _completion(http)
        content = message.get("content")
        prompt_tokens = usage.get("prompt_tokens") if usage else None
        completion_tokens = usage.get("completion_tokens") if usage else None
        if prompt_tokens is None:
            prompt_tokens = prompt_tokens_of(request)
        if completion_tokens is None:
            completion_tokens = estimate_tokens(content or "")
        return CachedAnswer(
            key=request.key,
            model=self.llm.model,
            content=content,
            refusal=message.get("refusal"),
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=self.price.cost(prompt_tokens, completion_tokens),
            billing="sync",
        )

    async def _one(self, request: GenerationRequest) -> CachedAnswer | Failure:
        prompt_tokens = prompt_tokens_of(request)
        worst_case = self.price.cost(prompt_tokens, self.llm.max_tokens)
        if self.stats.cost_usd + self.reserved_usd + worst_case > self.budget_usd:
            self.stats.skipped_for_budget += 1
            return Failure(
                "budget_exhausted",
                f"not sent: ${self.stats.cost_usd:.4f} spent + ${self.reserved_usd:.4f} in flight + up to "
                f"${worst_case:.4f} for this request would pass the budget of ${self.budget_usd:.4f}",
            )
        self.reserved_usd += worst_case
        try:
            for attempt in range(self.llm.max_retries + 1):
                await self.limits.acquire(prompt_tokens + self.llm.max_tokens)
                self.cache.check()
                self.stats.sent += 1
                try:
                    answer = await self._call(request)
                except openai.BadRequestError as error:
                    if "response_format" in error.message or "json_schema" in error.message:
                        raise StructuredOutputUnsupported(_describe(error)) from None
                    return Failure("request_failed", _describe(error))
                except openai.APIError as error:
                    if not _is_retryable(error) or attempt == self.llm.max_retries:
                        return Failure("request_failed", f"{_describe(error)} after {attempt + 1} attempt(s)")
                    self.stats.retries += 1
                    backoff = random.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt))
                    server_wait = _retry_after(error) if isinstance(error, openai.APIStatusError) else None
                    await asyncio.sleep(max(backoff, server_wait or 0.0))
                    continue
                self.cache.put(answer)
                self.stats.cost_usd += answer.cost_usd
                self.stats.prompt_tokens += answer.prompt_tokens
                self.stats.completion_tokens += answer.completion_tokens
                return answer
        finally:
            self.reserved_usd -= worst_case
        raise AssertionError("unreachable: the loop returns on its last attempt")

    def _record(self, request: GenerationRequest, result: CachedAnswer | Failure) -> None:
        self.results[request.key] = result
        if isinstance(result, Failure) and result.reason == "request_failed":
            self.stats.failed += 1
            self.consecutive_failures += 1
            if self.consecutive_failures >= self.llm.circuit_breaker_failures:
                self.breaker_reason = result.detail
        elif isinstance(result, CachedAnswer):
            self.consecutive_failures = 0
        now = time.monotonic()
        if self.progress and now - self.last_report >= PROGRESS_EVERY_SECONDS:
            self.last_report = now
            self.progress(len(self.results), self.stats.requests, self.stats.summary())

    async def run(self, pending: list[GenerationRequest]) -> None:
        queue: asyncio.Queue[GenerationRequest] = asyncio.Queue()
        for request in pending:
            queue.put_nowait(request)

        async def worker() -> None:
            while not self.breaker_reason:
                try:
                    request = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                self._record(request, await self._one(request))

        workers = [asyncio.create_task(worker()) for _ in range(min(self.llm.concurrency, max(len(pending), 1)))]
        try:
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()


def run_requests(
    requests: list[GenerationRequest],
    llm: LlmConfig,
    cache: AnswerCache,
    price: Price,
    *,
    api_key: str | None,
    budget_usd: float,
    replay: bool,
    unanswered: str | None = None,
    progress: Callable[[int, int, dict], None] | None = None,
) -> tuple[dict[str, CachedAnswer | Failure], dict]:
    """The answer (or failure) of every request, and the run's numbers.

    Cached answers are used as they are. In replay mode a missing answer raises
    :class:`ReplayMissError`; with ``unanswered`` (answers came by another route, such as the
    Batch API) a missing answer is a ``request_failed`` failure saying so; otherwise the missing
    requests are sent.
    """
    cached = cache.get_many([request.key for request in requests])
    pending = [request for request in requests if request.key not in cached]
    if unanswered is not None:
        stats = RunStats(requests=len(requests), from_cache=len(cached), failed=len(pending))
        return cached | {request.key: Failure("request_failed", unanswered) for request in pending}, stats.summary()
    if replay and pending:
        keys = ", ".join(request.key for request in pending[:MISSING_KEYS_SHOWN])
        more = f" and {len(pending) - MISSING_KEYS_SHOWN} more" if len(pending) > MISSING_KEYS_SHOWN else ""
        raise ReplayMissError(
            f"replay mode: {len(pending)} of {len(requests)} requests are not in the cache {cache.path} "
            f"(missing keys: {keys}{more}); run once without replay to record them, or restore the cache"
        )
    if pending and not api_key:
        raise LlmError(
            f"the API key variable {llm.api_key_env} is not set; export it (for a local server any value works) "
            "or set generation.llm.api_key_env in task.yaml"
        )
    results: dict[str, CachedAnswer | Failure] = dict(cached)
    stats = RunStats(requests=len(requests), from_cache=len(cached))
    if pending:
        writer = _CacheWriter(cache)
        run = _Run(None, llm, writer, price, budget_usd, stats, progress)

        async def main() -> None:
            # Made in the loop that uses it: the aiohttp session binds to the running loop.
            run.client = openai.AsyncOpenAI(
                base_url=llm.base_url,
                api_key=api_key,
                max_retries=0,
                timeout=llm.timeout_seconds,
                http_client=_http_client(llm),
            )
            async with run.client:
                await run.run(pending)

        try:
            with asyncio.Runner(loop_factory=_new_event_loop) as runner:
                runner.run(main())
        finally:
            writer.close()  # every answer received is in the cache before this returns or raises
        results.update(run.results)
        if run.breaker_reason:
            raise CircuitOpenError(
                f"stopped after {llm.circuit_breaker_failures} failed requests in a row at {llm.base_url} "
                f"(last: {run.breaker_reason}); {len(run.results)} of {len(pending)} requests finished and every "
                "answer received is cached: fix the endpoint and re-run to resume"
            )
    return results, stats.summary()
