"""Screenshots of the Dagster UI for the README: the factory's asset graph and a held-out evaluation.

Not part of CI; installs nothing. Needs Debian's Chromium (``apt-get install -y chromium``) and this
repository's instance after ``make demo`` (the heldout_eval materialization of ``hwu64-demo_2``)::

    .venv/bin/python scripts/ui_screenshots.py            # writes docs/images/asset_graph.png, heldout_eval.png

It serves the repository's instance (DAGSTER_HOME = the repository root) with the webserver that
``make ui`` runs, but without the daemon: ``dagster dev``'s daemon would tick the sensors
(``data/incoming/`` files become batches and runs) and automation on your instance, and stopping
it after the screenshots would interrupt those runs. Start, readiness and shutdown are
``synth_assets.dev_server``, shared with the UI smoke test.

The UI opens a community sign-up dialog on http://127.0.0.1 and http://localhost unless it was
dismissed (which writes to the instance), so Chromium reaches the server under another host name
mapped to 127.0.0.1. Each screenshot is taken once the page shows its data (no spinner, the
expected text), through the DevTools protocol; a page that does not get there is tried again.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from PIL import Image

from synth_assets.defs.resources import PROJECT_ROOT
from synth_assets.dev_server import DevServer, dagster_dev

HOST_ALIAS = "synth-assets-ui.test"  # .test never resolves on the network: only through --host-resolver-rules
OUT_DIR = PROJECT_ROOT / "docs" / "images"
MAX_BYTES = 400_000
MIN_COLOURS = 200  # a blank page has one; these pages have thousands

MATERIALIZATION = """
query Materialization($partition: String!) {
  assetOrError(assetKey: {path: ["heldout_eval"]}) {
    __typename
    ... on Asset { assetMaterializations(partitions: [$partition], limit: 1) { runId partition } }
  }
}
"""


@dataclass(frozen=True)
class Shot:
    name: str
    path: str
    size: tuple[int, int]
    """Window size in CSS pixels; the image is this times ``scale``."""
    scale: float
    expect: tuple[str, ...]
    """Text the page shows once its data is in."""


def shots(server: DevServer, partition: str) -> list[Shot]:
    # The lineage gets a viewport wider than its image (scale < 1) so that the fitted graph is drawn
    # large enough for the nodes to show their details.
    repository = quote(f"{server.location['repository']}@{server.location['name']}", safe="@")
    return [
        Shot("asset_graph.png", f"/locations/{repository}/asset-groups/factory", (2000, 700), 0.8, ("heldout_eval", "filled")),
        Shot(
            "heldout_eval.png",
            f"/assets/heldout_eval?view=partitions&partition={quote(partition)}",
            (1600, 1000),
            1.0,
            (partition, "Materialized", "macro_f1"),
        ),
    ]


class Chromium:
    """Headless Chromium driven over ``--remote-debugging-pipe`` (the DevTools protocol on fds 3 and 4), stdlib only.

    Unlike ``--screenshot`` with a virtual-time budget, this waits until the page says its data is in:
    the UI fetches live data in batches, and a fixed budget caught nodes still "Loading..." now and then.
    """

    def __init__(self, executable: str, shot: Shot) -> None:
        self.profile = tempfile.TemporaryDirectory(prefix="ui-screenshots-profile-")
        flags = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--no-proxy-server",
            f"--user-data-dir={self.profile.name}",
            f"--host-resolver-rules=MAP {HOST_ALIAS} 127.0.0.1",
            f"--window-size={shot.size[0]},{shot.size[1]}",
            f"--force-device-scale-factor={shot.scale}",
            "--remote-debugging-pipe",
        ]
        # Chromium reads commands on fd 3 and answers on fd 4: our stdin and stdout pipes, moved there.
        self.process = subprocess.Popen(
            ["/bin/sh", "-c", 'exec "$@" 3<&0 4>&1 0</dev/null 1>/dev/null', "sh", executable, *flags, "about:blank"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.ids = itertools.count(1)
        self.buffer = b""

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30.0) -> dict:
        message = {"id": next(self.ids), "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self.process.stdin.write(json.dumps(message).encode() + b"\0")
        self.process.stdin.flush()
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" not in self.buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not select.select([self.process.stdout], [], [], remaining)[0]:
                    raise TimeoutError(f"Chromium did not answer {method} within {timeout:.0f}s")
                chunk = os.read(self.process.stdout.fileno(), 1 << 20)
                if not chunk:
                    raise RuntimeError(f"Chromium exited ({self.process.poll()}) during {method}")
                self.buffer += chunk
            raw, self.buffer = self.buffer.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == message["id"]:  # anything else is an event
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]

    def shoot(self, url: str, shot: Shot, target: Path, timeout: float) -> bool:
        """Open ``url``, wait until it is :func:`ready` (twice, a second apart), save a PNG; False on timeout."""
        page = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": page, "flatten": True})["sessionId"]
        # A tab's viewport is smaller than --window-size; the image is exactly size x scale.
        metrics = {"width": shot.size[0], "height": shot.size[1], "deviceScaleFactor": shot.scale, "mobile": False}
        self.send("Emulation.setDeviceMetricsOverride", metrics, session)
        self.send("Page.navigate", {"url": url}, session)
        check = {"expression": READY.replace("EXPECT", json.dumps(list(shot.expect))), "returnByValue": True}
        deadline, streak = time.monotonic() + timeout, 0
        while streak < 2:  # ready, then still ready after the graph's zoom-to-fit and late re-renders
            if time.monotonic() > deadline:
                return False
            time.sleep(1.0)
            streak = streak + 1 if self.send("Runtime.evaluate", check, session)["result"].get("value") else 0
        png = self.send("Page.captureScreenshot", {"format": "png"}, session)["data"]
        target.write_bytes(base64.b64decode(png))
        return True

    def close(self) -> None:
        with suppress(Exception):
            self.send("Browser.close", timeout=5.0)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.profile.cleanup()


# The page's data is in: no spinner left, and the expected text is shown.
READY = """(() => {
  const text = document.body ? document.body.innerText : "";
  return !document.querySelector('[role="progressbar"]') && EXPECT.every((part) => text.includes(part));
})()"""


def colours(path: Path) -> int:
    with Image.open(path) as image:
        found = image.convert("RGB").getcolors(maxcolors=1 << 20)
    return len(found) if found is not None else 1 << 20


def shrink(path: Path, limit: int = MAX_BYTES) -> None:
    """Palette, then smaller, until the PNG is at most ``limit`` bytes."""
    if path.stat().st_size <= limit:
        return
    with Image.open(path) as opened:
        image = opened.convert("RGB")
    factor = 1.0
    while True:
        size = (round(image.width * factor), round(image.height * factor))
        sized = image if factor == 1.0 else image.resize(size, Image.LANCZOS)
        sized.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
        if path.stat().st_size <= limit or factor < 0.5:
            return
        factor *= 0.85


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--partition", default="hwu64-demo_2", help="the dataset version whose heldout_eval is shown")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="folder for the PNGs (default: docs/images)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds a page may take to show its data")
    args = parser.parse_args(argv)

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        print("Chromium not found: apt-get install -y chromium", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="ui-screenshots-") as scratch,
        dagster_dev(PROJECT_ROOT, daemon=False, log_path=Path(scratch) / "webserver.log", ready_timeout=180) as server,
    ):
        print(f"UI of {PROJECT_ROOT} on {server.url} ({time.monotonic() - started:.0f}s)", flush=True)
        found = server.query(MATERIALIZATION, {"partition": args.partition})["assetOrError"]
        if found["__typename"] != "Asset" or not found["assetMaterializations"]:
            print(f"heldout_eval has no materialization of {args.partition} here: run `make demo` first", file=sys.stderr)
            return 1
        base = server.url.replace(server.host, HOST_ALIAS, 1)
        for shot in shots(server, args.partition):
            target, url = args.out / shot.name, base + shot.path
            for attempt in range(1, 4):
                browser = Chromium(executable, shot)
                try:
                    taken = browser.shoot(url, shot, target, timeout=args.timeout)
                finally:
                    browser.close()
                if taken and colours(target) >= MIN_COLOURS:
                    break
                print(f"  {shot.name}: not loaded within {args.timeout:.0f}s (attempt {attempt})", flush=True)
            else:
                print(f"{shot.name}: still not loaded after 3 attempts: {url}", file=sys.stderr)
                return 1
            shrink(target)
            shown = target.relative_to(PROJECT_ROOT) if target.is_relative_to(PROJECT_ROOT) else target
            print(f"  {shown}: {target.stat().st_size // 1000} KB  <- {shot.path}", flush=True)
    print(f"done in {time.monotonic() - started:.0f}s; the UI is stopped (clean: {server.killed == []})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
