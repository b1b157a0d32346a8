"""``genmedia-emulator``: serve the emulator of the four vendor APIs from the command line."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from typing import get_args

from aiohttp import web
from pydantic import ValidationError

from genmedia_emulator.app import create_app
from genmedia_emulator.config import FAULTS, VARIANTS, EmulatorConfig


def _parser() -> argparse.ArgumentParser:
    defaults = EmulatorConfig()
    parser = argparse.ArgumentParser(
        prog="genmedia-emulator",
        description="Local emulator of the Novita AI and gpt.ge (Jimeng, Bailian, avatar) APIs. "
        "Settings can also be changed at run time with POST /_emulator/config.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--api-key", default=defaults.api_key, help="the bearer key clients must send")
    parser.add_argument("--image-seconds", type=float, default=defaults.image_seconds, help="duration of image tasks")
    parser.add_argument("--video-seconds", type=float, default=defaults.video_seconds, help="duration of video tasks")
    parser.add_argument("--image-seconds-max", type=float, help="draw each image task's duration up to this")
    parser.add_argument("--video-seconds-max", type=float, help="draw each video task's duration up to this")
    parser.add_argument("--time-scale", type=float, default=defaults.time_scale, help="multiplies both durations")
    parser.add_argument("--url-ttl", type=int, help="lifetime of output URLs in seconds (default: the vendor's)")
    parser.add_argument("--public-url", help="base of output URLs (default: the host the client called)")
    parser.add_argument("--redirect-downloads", help="answer every download with a 307 to this base URL")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added before every API answer")
    parser.add_argument("--retry-after", type=int, default=defaults.retry_after, help="Retry-After of injected 429s")
    parser.add_argument("--fail-marker", default=defaults.fail_marker, help="prompt word that makes a task fail")
    parser.add_argument("--fail-reason", default=defaults.fail_reason, help="reason reported by failed tasks")
    parser.add_argument("--expire-marker", default=defaults.expire_marker, help="prompt word that expires a task")
    parser.add_argument("--nsfw-marker", default=defaults.nsfw_marker, help="prompt word that scores as NSFW")
    parser.add_argument("--seed", dest="random_seed", type=int, help="seed of fault rates and picked seeds")
    parser.add_argument(
        "--poll-outage-seconds", type=float, default=0.0, help="answer every poll with a 502 page for S s from start"
    )
    parser.add_argument(
        "--poll-outage-api", dest="poll_outage_apis", action="append", help="an API the outage hits (default: all)"
    )
    variants = parser.add_argument_group("vendor variants", "answers the vendors' own documents show")
    for name in VARIANTS:
        field = EmulatorConfig.model_fields[name]
        flag = f"--{name.replace('_', '-')}"
        if field.annotation is bool:
            variants.add_argument(flag, action=argparse.BooleanOptionalAction, help=field.description)
        else:
            choices = get_args(field.annotation)
            variants.add_argument(flag, choices=choices, help=f"{field.description} (default: {field.default})")
    for fault in FAULTS:
        flag = fault.replace("_", "-")
        group = parser.add_argument_group(f"{flag} fault")
        group.add_argument(f"--{flag}-rate", type=float, default=0.0, help="probability per event")
        group.add_argument(f"--{flag}-every", type=int, default=0, help="hit every N-th event")
        group.add_argument(f"--{flag}-next", type=int, default=0, help="hit the next N events")
    return parser


def config_from_args(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, EmulatorConfig]:
    """The parsed command line and the `EmulatorConfig` it describes."""
    parser = _parser()
    args = parser.parse_args(argv)
    settings = {
        key: value
        for key, value in vars(args).items()
        if key not in ("host", "port") and not key.startswith(FAULTS) and value is not None
    }
    for fault in FAULTS:
        rule = {part: getattr(args, f"{fault}_{part}") for part in ("rate", "every", "next")}
        settings[fault] = rule
    try:
        return args, EmulatorConfig.model_validate(settings)
    except ValidationError as error:
        parser.error(str(error))


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the emulator until interrupted."""
    args, config = config_from_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    web.run_app(
        create_app(config),
        host=args.host,
        port=args.port,
        print=lambda _: print(f"genmedia emulator listening on http://{args.host}:{args.port}", flush=True),
    )
