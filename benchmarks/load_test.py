"""Load test of `audiograft serve` on loopback: many concurrent OpenAI-client requests, one server.

Starts the server in a subprocess, waits for /health, sends `--requests` transcriptions at once through OpenAI's
async client (no retries, so every failure counts), and reports errors, latency percentiles, throughput, the
server's peak resident memory (sampled every 50 ms, children included) and the device batches it ran, for each
wave of requests (a second wave on the same server shows whether memory keeps growing).

    python benchmarks/load_test.py --requests 200 --waves 2 --json benchmarks/load_test.json
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import json
import logging
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2
import openai
import psutil
import soundfile

logger = logging.getLogger("load_test")
REPOSITORY = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_bytes(process: psutil.Process) -> int:
    total = 0
    for part in [process, *process.children(recursive=True)]:
        try:
            total += part.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


async def sample_peak_rss(process: psutil.Process, peak: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], rss_bytes(process))
        await asyncio.sleep(0.05)


async def wait_until_healthy(base_url: str, server: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    async with httpx2.AsyncClient() as http:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError(f"the server exited with {server.returncode} before it was healthy")
            try:
                if (await http.get(base_url + "/health")).status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            await asyncio.sleep(0.5)
    raise TimeoutError(f"the server was not healthy within {timeout:g} s")


async def one_request(client: openai.AsyncOpenAI, name: str, audio: bytes) -> tuple[float, str | None]:
    started = time.perf_counter()
    try:
        await client.audio.transcriptions.create(model="default", file=(name, audio), response_format="json")
    except openai.OpenAIError as error:
        return time.perf_counter() - started, f"{type(error).__name__}: {error}"
    return time.perf_counter() - started, None


async def load_test(args: argparse.Namespace) -> dict:
    clips = [Path(path) for path in sorted(glob.glob(args.clips))]
    if not clips:
        raise SystemExit(f"no clips match {args.clips}")
    audio = {clip.name: clip.read_bytes() for clip in clips}
    seconds = {clip.name: soundfile.info(str(clip)).duration for clip in clips}
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "audiograft", "serve", "--model", args.model, "--device", args.device,
               "--port", str(port), "--max-batch-size", str(args.max_batch_size),
               "--max-queue-depth", str(max(args.requests, 256)), "--request-timeout", str(args.request_timeout)]
    logger.info("starting: %s", " ".join(command))
    with open(args.server_log, "w") as log:
        server = subprocess.Popen(command, cwd=REPOSITORY, stdout=log, stderr=subprocess.STDOUT)
    try:
        await wait_until_healthy(base_url, server, args.startup_timeout)
        process = psutil.Process(server.pid)
        figures = {"command": " ".join(command[1:]), "clips": {name: round(seconds[name], 2) for name in audio},
                   "server_rss_idle_mb": round(rss_bytes(process) / 2**20), "waves": []}
        client = openai.AsyncOpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0,
                                    timeout=args.request_timeout + 60)
        names = [clips[i % len(clips)].name for i in range(args.requests)]
        for _ in range(args.waves):
            figures["waves"].append(await wave(client, base_url, process, names, audio, seconds))
    finally:
        server.terminate()
        server.wait(timeout=30)
    return figures


async def wave(client: openai.AsyncOpenAI, base_url: str, process: psutil.Process, names: list[str],
               audio: dict[str, bytes], seconds: dict[str, float]) -> dict:
    """All requests at once; the figures of this wave alone."""
    batches_before = httpx2.get(base_url + "/health").json()["device_batches"]
    peak, stop = [rss_bytes(process)], asyncio.Event()
    sampler = asyncio.create_task(sample_peak_rss(process, peak, stop))
    started = time.perf_counter()
    outcomes = await asyncio.gather(*(one_request(client, name, audio[name]) for name in names))
    wall = time.perf_counter() - started
    stop.set()
    await sampler
    batches_after = httpx2.get(base_url + "/health").json()["device_batches"]
    latencies = sorted(latency for latency, _ in outcomes)
    errors = [error for _, error in outcomes if error is not None]
    percentiles = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "requests": len(names),
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:5],
        "wall_seconds": round(wall, 1),
        "latency_p50_seconds": round(percentiles[49], 1),
        "latency_p95_seconds": round(percentiles[94], 1),
        "latency_max_seconds": round(latencies[-1], 1),
        "requests_per_second": round(len(names) / wall, 3),
        "audio_seconds_per_second": round(sum(seconds[name] for name in names) / wall, 2),
        "server_rss_peak_mb": round(peak[0] / 2**20),
        "server_rss_after_mb": round(rss_bytes(process) / 2**20),
        "device_batches": batches_after["batches"] - batches_before["batches"],
        "largest_batch_so_far": batches_after["largest"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--requests", type=int, default=200, help="Sent at once, in each wave.")
    parser.add_argument("--waves", type=int, default=1, help="Waves one after the other, to see memory settle.")
    parser.add_argument("--clips", default=str(REPOSITORY / "examples" / "*.flac"))
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--request-timeout", type=float, default=3600.0,
                        help="The server's; all requests arrive at once, so the last waits for every batch before it.")
    parser.add_argument("--startup-timeout", type=float, default=600.0)
    parser.add_argument("--server-log", type=Path, default=Path(tempfile.gettempdir()) / "audiograft_load_test_server.log")
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logger.setLevel(logging.INFO)
    figures = asyncio.run(load_test(args))
    text = json.dumps(figures, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()
