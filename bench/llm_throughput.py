"""Throughput of the LLM client against the fake OpenAI server, next to a plain asyncio loop.

    .venv/bin/python bench/llm_throughput.py [--levels 1,16,64,256] [--latency-ms 200] [--replay-answers 20000]

The fake server (``python -m synth_assets.fake_openai``) runs in its own process, so the client
CPU measured here (``time.process_time`` of this process) is the client's alone. For each
concurrency level, in the same run:

- ``ours``: ``llm_client.run_requests`` with a fresh temp cache, replay off and limits/budget so
  high they never bind;
- ``plain``: ``openai.AsyncOpenAI(max_retries=0)`` + ``asyncio.Semaphore(c)`` + gather, over the
  same request bodies.

Then replay: a batch of ``--replay-answers`` cached answers generated with ``generate_batch``
(replay=True), asserting the server saw no chat call. Targets (the issue): ours >= 90% of
theoretical (concurrency / latency) at 64, >= 1.2x plain at 256, replay >= 20,000 rows/s.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import openai
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from synth_assets.core.generation import LlmSession, generate_batch  # noqa: E402
from synth_assets.core.llm_cache import CachedAnswer, ResponseCache  # noqa: E402
from synth_assets.core.llm_client import run_requests  # noqa: E402
from synth_assets.core.pricing import price_for  # noqa: E402
from synth_assets.core.prompts import build_requests  # noqa: E402
from synth_assets.core.task_config import LlmConfig, load_task  # noqa: E402
from synth_assets.fake_openai import example_texts, parse_ask  # noqa: E402

API_KEY = "sk-bench-not-a-secret"
MODEL = "gpt-4o-mini"
CHAT = "POST /v1/chat/completions"
LABELS = {
    "alarm_set": "the user wants to set an alarm",
    "weather_query": "the user asks about the weather",
    "play_music": "the user wants music played",
    "lights_off": "the user wants the lights turned off",
    "timer_set": "the user wants a countdown timer",
    "shopping_add": "the user wants something added to the shopping list",
    "news_query": "the user asks for the news",
    "volume_up": "the user wants the volume louder",
    "call_contact": "the user wants to phone someone",
    "joke_request": "the user wants to hear a joke",
}
SEED_TEXTS = ["example request number {i} about {label}", "please do the {label} thing {i}", "hey can you {label} {i}"]


# -- the fake server, in its own process ---------------------------------------------------------


class FakeServer:
    def __init__(self, latency_ms: float):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.root = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.root}/v1"
        cmd = [sys.executable, "-m", "synth_assets.fake_openai", "--port", str(self.port), "--latency-ms", str(latency_ms)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.stats()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"fake server did not start: {self.proc.stderr.read().decode()[-2000:]}") from None
                time.sleep(0.1)

    def _call(self, method: str, path: str) -> dict:
        request = urllib.request.Request(self.root + path, data=b"{}" if method == "POST" else None, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def stats(self) -> dict:
        return self._call("GET", "/_control/stats")

    def chat_hits(self) -> int:
        return self.stats()["hits"].get(CHAT, 0)

    def reset(self) -> None:
        self._call("POST", "/_control/reset")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# -- a task on disk, built like the tests build theirs -------------------------------------------


def write_task(root: Path, base_url: str, n_labels: int, per_label: int, examples_per_request: int) -> Path:
    task_dir = root / "tasks" / "bench"
    task_dir.mkdir(parents=True, exist_ok=True)
    labels = dict(list(LABELS.items())[:n_labels])
    seeds = [(t.format(i=i, label=label), label) for label in labels for i in range(3) for t in SEED_TEXTS]
    pd.DataFrame(seeds, columns=["text", "label"]).to_csv(task_dir / "seeds.csv", index=False)
    pd.DataFrame(seeds[::3], columns=["text", "label"]).to_csv(task_dir / "heldout.csv", index=False)
    llm = {
        "model": MODEL,
        "base_url": base_url,
        "api_key_env": "BENCH_OPENAI_KEY",
        "examples_per_request": examples_per_request,
        "max_retries": 3,
        "timeout_seconds": 60,
        "concurrency": 16,
        "requests_per_minute": 10**9,
        "tokens_per_minute": 10**12,
        "budget_usd_per_batch": 10**9,
        "budget_usd_per_task": 10**9,
    }
    config = {
        "name": "bench",
        "text_kind": "short request to a home assistant",
        "labels": labels,
        "generation": {"backend": "openai", "per_label": per_label, "llm": llm},
        "gate": {"min_chars": 3, "max_chars": 200, "yield_floor": 0.1, "max_near_dup_rate": 0.9},
    }
    (task_dir / "task.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return task_dir


def seed_frame(task) -> pd.DataFrame:
    seeds = pd.read_csv(task.seeds_path)
    seeds["seed_id"] = [f"s:{label}:{i}" for i, label in enumerate(seeds["label"])]
    return seeds[["seed_id", "text", "label"]]


# -- one measured phase ----------------------------------------------------------------------------


def measure(server: FakeServer, fn) -> dict:
    gc.collect()
    hits0, server_cpu0 = server.chat_hits(), server.cpu_seconds()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    out = fn()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {
        "wall": wall,
        "cpu": cpu,
        "hits": server.chat_hits() - hits0,
        "server_cpu": server.cpu_seconds() - server_cpu0,
        "out": out,
    }


def run_ours(requests, llm: LlmConfig, concurrency: int, tmp: Path) -> int:
    llm = llm.model_copy(update={"concurrency": concurrency})
    cache = ResponseCache(tmp / f"ours-{concurrency}-{time.monotonic_ns()}.sqlite")
    try:
        results, summary = run_requests(requests, llm, cache, price_for(MODEL), api_key=API_KEY, budget_usd=1e12, replay=False)
        ok = sum(isinstance(r, CachedAnswer) for r in results.values())
        assert ok == len(requests) == summary["sent"], (ok, len(requests), summary)
        assert len(cache) == len(requests)
        return ok
    finally:
        cache.close()


def run_plain(requests, base_url: str, concurrency: int) -> int:
    async def main() -> int:
        client = openai.AsyncOpenAI(base_url=base_url, api_key=API_KEY, max_retries=0)
        semaphore = asyncio.Semaphore(concurrency)

        async def one(request):
            async with semaphore:
                response = await client.chat.completions.create(messages=request.messages, **request.params)
                return response.choices[0].message.content

        async with client:
            answers = await asyncio.gather(*(one(request) for request in requests))
        return sum(answer is not None for answer in answers)

    ok = asyncio.run(main())
    assert ok == len(requests)
    return ok


def fill_cache(cache: ResponseCache, requests) -> None:
    """A recorded answer for every request, as the fake server would have given it (no HTTP)."""
    answers = []
    for request in requests:
        ask = parse_ask({"messages": request.messages, **request.params})
        content = json.dumps({"examples": [{"text": text, "label": ask.label} for text in example_texts(ask)]})
        answers.append(CachedAnswer(request.key, MODEL, content, None, "stop", 300, 60, 0.0001, "sync"))
    with cache._lock:  # one transaction: filling is setup, not what is measured
        cache._con.execute("BEGIN")
        for answer in answers:
            cache._con.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*[getattr(answer, f) for f in CachedAnswer.__dataclass_fields__], "2026-01-01T00:00:00+00:00"),
            )
        cache._con.execute("COMMIT")


def _pool_transport():
    """The transport llm_client uses for its own pool (aiohttp when installed, httpx otherwise)."""
    from synth_assets.core import llm_client

    make = getattr(llm_client, "_http_client", None)
    if make is None:
        return openai.AsyncOpenAI(api_key="x")._client._transport
    return make(LlmConfig(model=MODEL))._transport


def _loop_name() -> str:
    from synth_assets.core import llm_client

    factory = getattr(llm_client, "_new_event_loop", None)
    return "asyncio" if factory is None else f"{factory.__module__.split('.')[0]}"


# -- main ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1,16,64,256")
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--per-level", type=int, default=20, help="requests per level = max(50, concurrency * this)")
    parser.add_argument("--replay-answers", type=int, default=20_000)
    parser.add_argument("--examples-per-request", type=int, default=5)
    parser.add_argument("--only", choices=["ours", "plain", "both"], default="both")
    parser.add_argument("--skip-replay", action="store_true")
    args = parser.parse_args(argv)
    levels = [int(level) for level in args.levels.split(",") if level]
    latency = args.latency_ms / 1000
    epr = args.examples_per_request

    print(f"python {platform.python_version()}, openai {openai.__version__}, {os.cpu_count()} cpu, {platform.platform()}")
    print(
        f"transport: {type(_pool_transport()).__name__}, event loop: {_loop_name()}; "
        f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    server = FakeServer(args.latency_ms)
    rows = []
    failures = []
    try:
        with tempfile.TemporaryDirectory(prefix="llm-bench-") as tmpdir:
            tmp = Path(tmpdir)
            most = max(max(50, c * args.per_level) for c in levels)
            n_labels = 4
            per_label = -(-most // n_labels) * epr
            task = load_task(write_task(tmp / "data", server.base_url, n_labels, per_label, epr))
            seeds = seed_frame(task)
            all_requests = build_requests(task, "bench-b1", seeds, task.generation.llm.structured_output)
            # Interleave labels so every level sends a mix of them.
            all_requests.sort(key=lambda r: (r.request_index, r.label))
            llm = task.generation.llm

            # Warm up imports, pydantic models and the server.
            run_plain(all_requests[:8], server.base_url, 8)

            print(
                f"\n{'client':<6} {'conc':>5} {'reqs':>6} {'wall s':>7} {'req/s':>8} {'% theor':>8} "
                f"{'CPU ms/req':>10} {'server CPU %':>12}"
            )
            for c in levels:
                n = max(50, c * args.per_level)
                requests = all_requests[:n]
                theory = c / latency
                for name in ("plain", "ours"):
                    if args.only not in (name, "both"):
                        continue
                    if name == "ours":
                        m = measure(server, lambda requests=requests, c=c: run_ours(requests, llm, c, tmp))
                    else:
                        m = measure(server, lambda requests=requests, c=c: run_plain(requests, server.base_url, c))
                    assert m["hits"] == n, f"{name}@{c}: server saw {m['hits']} chat calls for {n} requests"
                    rps = n / m["wall"]
                    row = {
                        "client": name,
                        "concurrency": c,
                        "requests": n,
                        "wall_s": m["wall"],
                        "rps": rps,
                        "theory_frac": rps / theory,
                        "cpu_ms_per_req": 1000 * m["cpu"] / n,
                        "server_cpu_pct": 100 * m["server_cpu"] / m["wall"],
                    }
                    rows.append(row)
                    print(
                        f"{name:<6} {c:>5} {n:>6} {m['wall']:>7.2f} {rps:>8.1f} {100 * rps / theory:>7.1f}% "
                        f"{row['cpu_ms_per_req']:>10.2f} {row['server_cpu_pct']:>11.0f}%"
                    )

            replay = None
            if not args.skip_replay:
                n_answers = args.replay_answers
                n_labels = len(LABELS)
                per_label = -(-n_answers // n_labels) * epr
                rtask = load_task(write_task(tmp / "replay", server.base_url, n_labels, per_label, epr))
                rseeds = seed_frame(rtask)
                rrequests = build_requests(rtask, "bench-replay", rseeds, rtask.generation.llm.structured_output)
                cache = ResponseCache(tmp / "replay.sqlite")
                fill_cache(cache, rrequests)
                session = LlmSession(cache=cache, api_key=API_KEY, replay=True)
                server.reset()
                m = measure(server, lambda: generate_batch(rtask, "bench-replay", rseeds, session))
                cache.close()
                table = m["out"].table
                assert m["hits"] == 0 and server.chat_hits() == 0, "replay called the server"
                assert len(table) == len(rrequests) * epr and (table["status"] == "ok").all()
                replay = {
                    "answers": len(rrequests),
                    "rows": len(table),
                    "wall_s": m["wall"],
                    "rows_per_s": len(table) / m["wall"],
                    "answers_per_s": len(rrequests) / m["wall"],
                    "cpu_s": m["cpu"],
                }
                print(
                    f"\nreplay: {replay['answers']} cached answers -> {replay['rows']} rows in {m['wall']:.2f} s = "
                    f"{replay['rows_per_s']:,.0f} rows/s ({replay['answers_per_s']:,.0f} answers/s), 0 chat calls"
                )
    finally:
        server.stop()

    def pick(client, c):
        return next((r for r in rows if r["client"] == client and r["concurrency"] == c), None)

    print("\ntargets:")
    if (ours := pick("ours", 64)) is not None:
        good = ours["theory_frac"] >= 0.9
        print(f"  ours @64 >= 90% of theoretical: {100 * ours['theory_frac']:.1f}% {'OK' if good else 'MISS'}")
        failures += [] if good else ["ours@64"]
    if (ours := pick("ours", 256)) is not None and (plain := pick("plain", 256)) is not None:
        ratio = ours["rps"] / plain["rps"]
        print(f"  ours @256 >= 1.2x plain: {ratio:.2f}x {'OK' if ratio >= 1.2 else 'MISS'}")
        failures += [] if ratio >= 1.2 else ["ours@256"]
    if replay is not None:
        good = replay["rows_per_s"] >= 20_000
        print(f"  replay >= 20,000 rows/s: {replay['rows_per_s']:,.0f} {'OK' if good else 'MISS'}")
        failures += [] if good else ["replay"]

    print(
        f"\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
        "markdown:\n"
    )
    print("| client | concurrency | requests | req/s | % of theoretical | client CPU ms/req | server CPU % |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['client']} | {r['concurrency']} | {r['requests']} | {r['rps']:.1f} | {100 * r['theory_frac']:.1f}% "
            f"| {r['cpu_ms_per_req']:.2f} | {r['server_cpu_pct']:.0f}% |"
        )
    if replay is not None:
        print(
            f"\nReplay: {replay['answers']:,} cached answers, {replay['rows']:,} rows in {replay['wall_s']:.2f} s: "
            f"**{replay['rows_per_s']:,.0f} rows/s**, 0 calls to the server."
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
