"""Benchmark: publish a 1 GiB output from a loopback HTTP server, next to ``curl -o`` on the same file.

Run: ``.venv/bin/python tests/benchmarks/bench_publish.py [--size-mib 1024]`` (not collected by pytest).
Prints the peak resident-memory growth of the publishing process (sampled from /proc every 10 ms) and the
throughput of `MediaPublisher` (the engine of PublishMediaOperator), and curl's peak RSS (its whole process)
and throughput on the same file in the same run.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from airflow.sdk import ObjectStoragePath

from airflow_provider_genmedia.publish import MediaPublisher
from airflow_provider_genmedia.results import GenerationResult, MediaOutput, TaskStatus

MIB = 1024 * 1024
PAGE = os.sysconf("SC_PAGE_SIZE")


def current_rss() -> int:
    """This process's resident memory now, in bytes."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * PAGE


def high_water_rss(pid: int) -> int:
    """The peak resident memory of a running process (VmHWM), in bytes; 0 once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    line = next((line for line in status.splitlines() if line.startswith("VmHWM:")), "VmHWM: 0 kB")
    return int(line.split()[1]) * 1024


class PeakRss:
    """Sample the RSS every 10 ms in a thread; ``growth`` is the peak above the RSS at start."""

    def __init__(self) -> None:
        self.baseline = current_rss()
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, current_rss())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


def make_file(path: Path, size_mib: int) -> str:
    """Write ``size_mib`` MiB of incompressible bytes (a random MiB, varied per block) and return its SHA-256."""
    digest, block = hashlib.sha256(), os.urandom(MIB)
    with path.open("wb") as file:
        for index in range(size_mib):
            chunk = index.to_bytes(8, "big") + block[8:]
            digest.update(chunk)
            file.write(chunk)
    return digest.hexdigest()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A threaded static HTTP server (Python's http.server, streaming with Content-Length) in its own process."""
    port = free_port()
    command = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(folder)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server, port
        except OSError:
            time.sleep(0.05)
    server.kill()
    raise RuntimeError("the HTTP server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    size_mib = parser.parse_args().size_mib
    with tempfile.TemporaryDirectory(prefix="genmedia-bench-") as folder:
        root = Path(folder)
        (root / "served").mkdir()
        expected = make_file(root / "served" / "big.mp4", size_mib)
        server, port = serve(root / "served")
        url = f"http://127.0.0.1:{port}/big.mp4"
        try:
            result = GenerationResult(
                api="novita",
                task_id="bench",
                status=TaskStatus.SUCCEEDED,
                outputs=[MediaOutput(url=url, kind="video", format="mp4")],
            )
            publisher = MediaPublisher(ObjectStoragePath(f"file://{root}/published"))
            with PeakRss() as rss:
                started = time.perf_counter()
                published = publisher.publish(result)
                publish_seconds = time.perf_counter() - started
            [file] = published["files"]
            assert (file["sha256"], file["bytes"]) == (expected, size_mib * MIB), "the published file differs"

            started = time.perf_counter()
            curl = subprocess.Popen(["curl", "-sS", "-o", str(root / "curl.mp4"), url])
            curl_peak = 0
            while curl.poll() is None:
                curl_peak = max(curl_peak, high_water_rss(curl.pid))
                time.sleep(0.01)
            curl_seconds = time.perf_counter() - started
            assert curl.returncode == 0, "curl failed"
        finally:
            server.terminate()
            server.wait()
    print(f"file: {size_mib} MiB from http.server on 127.0.0.1, written to file://, sha256 checked")
    print(f"{'tool':<22}{'seconds':>10}{'MiB/s':>10}{'peak RSS':>22}")
    print(
        f"{'MediaPublisher':<22}{publish_seconds:>10.2f}{size_mib / publish_seconds:>10.0f}"
        f"{f'+{rss.growth / MIB:.1f} MiB (growth)':>22}"
    )
    print(f"{'curl -o':<22}{curl_seconds:>10.2f}{size_mib / curl_seconds:>10.0f}{f'{curl_peak / MIB:.1f} MiB':>22}")


if __name__ == "__main__":
    main()
