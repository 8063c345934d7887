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
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import openai

from synth_assets.core.llm_cache import CachedAnswer, ResponseCache
from synth_assets.core.pricing import Price
from synth_assets.core.prompts import GenerationRequest
from synth_assets.core.task_config import LlmConfig

BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 60.0
PROGRESS_EVERY_SECONDS = 5.0
CHARS_PER_TOKEN = 4  # rough size of a token, for estimates made before the endpoint reports usage
MISSING_KEYS_SHOWN = 20


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


def _describe(error: Exception) -> str:
    if isinstance(error, openai.APIStatusError):
        return f"HTTP {error.status_code}: {error.message}"
    return f"{type(error).__name__}: {error}"


class _Run:
    def __init__(self, client, llm: LlmConfig, cache: ResponseCache, price: Price, budget_usd: float, stats: RunStats, progress):
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

    def _worst_case(self, request: GenerationRequest) -> float:
        return self.price.cost(prompt_tokens_of(request), self.llm.max_tokens)

    async def _call(self, request: GenerationRequest) -> CachedAnswer:
        response = await self.client.chat.completions.create(messages=request.messages, **request.params)
        choice = response.choices[0]
        usage = response.usage
        content = choice.message.content
        prompt_tokens = usage.prompt_tokens if usage else prompt_tokens_of(request)
        completion_tokens = usage.completion_tokens if usage else estimate_tokens(content or "")
        return CachedAnswer(
            key=request.key,
            model=self.llm.model,
            content=content,
            refusal=getattr(choice.message, "refusal", None),
            finish_reason=choice.finish_reason,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=self.price.cost(prompt_tokens, completion_tokens),
            billing="sync",
        )

    async def _one(self, request: GenerationRequest) -> CachedAnswer | Failure:
        worst_case = self._worst_case(request)
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
                await self.limits.acquire(prompt_tokens_of(request) + self.llm.max_tokens)
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
    cache: ResponseCache,
    price: Price,
    *,
    api_key: str | None,
    budget_usd: float,
    replay: bool,
    unanswered: str | None = None,
    progress: Callable[[int, int, dict], None] | None = None,
    http_client=None,
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
        client = openai.AsyncOpenAI(
            base_url=llm.base_url, api_key=api_key, max_retries=0, timeout=llm.timeout_seconds, http_client=http_client
        )
        run = _Run(client, llm, cache, price, budget_usd, stats, progress)

        async def main() -> None:
            async with client:
                await run.run(pending)

        asyncio.run(main())
        results.update(run.results)
        if run.breaker_reason:
            raise CircuitOpenError(
                f"stopped after {llm.circuit_breaker_failures} failed requests in a row at {llm.base_url} "
                f"(last: {run.breaker_reason}); {len(run.results)} of {len(pending)} requests finished and every "
                "answer received is cached: fix the endpoint and re-run to resume"
            )
    return results, stats.summary()
