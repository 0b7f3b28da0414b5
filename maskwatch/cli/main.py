"""The ``maskwatch`` command: one entry point for every stage and tool."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from maskwatch import __version__
from maskwatch.config.settings import ConfigError, Settings, load_settings

log = logging.getLogger("maskwatch")
LOG_LEVELS = ("debug", "info", "warning", "error")
FLAG_NAMES = {"redis_url": "--redis-url", "cameras": "--source/--camera-id/--fps"}
"""The command-line flag behind each override ``load_settings`` gets (named in config errors)."""


def _port(text: str) -> int:
    """A TCP port, 0-65535 (0: none)."""
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (0-65535; 0 disables)")
    return port


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", metavar="FILE", help="YAML config file (env MASKWATCH_* overrides it)")
    p.add_argument("--redis-url", metavar="URL", help="Redis URL (default: MASKWATCH_REDIS_URL)")


def _settings(args: argparse.Namespace, **overrides: object) -> Settings:
    return load_settings(
        getattr(args, "config", None),
        flag_names=FLAG_NAMES,
        redis_url=getattr(args, "redis_url", None),
        **overrides,
    )


def _cmd_validate_config(args: argparse.Namespace) -> int:
    try:
        s = load_settings(args.file)
    except ConfigError as e:
        print(f"{e.source}: {len(e.problems)} invalid field(s):", file=sys.stderr)
        for p in e.problems:
            print(f"  {p}", file=sys.stderr)
        return 2
    print(f"{args.file}: OK ({len(s.cameras)} camera(s): {', '.join(c.id for c in s.cameras) or '-'})")
    return 0


def _cmd_stage(args: argparse.Namespace) -> int:
    from maskwatch.cli.stages import run_stage

    settings = _settings(args)
    return run_stage(args.command, settings, camera_ids=getattr(args, "camera", None))


def _cmd_run(args: argparse.Namespace) -> int:
    from maskwatch.cli.run_all import run_all

    cameras = None
    if args.source:
        cameras = [{"id": args.camera_id, "url": args.source, "fps": args.fps}]
    settings = _settings(args, cameras=cameras)
    return run_all(
        settings,
        exit_when_done=not args.keep_running,
        results_json=args.events_out,
        metrics_port=args.metrics_port,
        progress_every_s=args.progress_every,
    )


def _cmd_check(args: argparse.Namespace) -> int:
    from maskwatch.runtime.heartbeat import check_alive

    settings = _settings(args)
    return check_alive(settings, args.stage, args.instance)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maskwatch", description="Live face-mask analytics for CCTV streams."
    )
    parser.add_argument(
        "--log-level",
        type=str.lower,
        choices=LOG_LEVELS,
        default=None,
        help="default info; debug also lets TensorFlow's own start-up lines through",
    )
    parser.add_argument("--version", action="version", version=f"maskwatch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="Read cameras and put sampled frames on Redis Streams")
    _common(p)
    p.add_argument("--camera", action="append", metavar="ID", help="Serve only these camera ids (repeatable)")
    p.set_defaults(func=_cmd_stage)
    for name, text in (
        ("worker", "Detect faces and classify masks in batches"),
        ("publisher", "Publish events and metrics"),
        ("mqtt", "Deliver violation documents and camera state to MQTT (Home Assistant discovery)"),
        ("api", "Serve the HTTP API (violations, snapshots, clips, reviews) and the review page"),
        ("webhooks", "POST violation documents, signed, to every configured webhook (metrics on :9105)"),
    ):
        p = sub.add_parser(name, help=text)
        _common(p)
        p.set_defaults(func=_cmd_stage)

    p = sub.add_parser("run", help="Run ingest, worker, publisher and the API together on this machine")
    _common(p)
    p.add_argument("--source", metavar="URL", help="One-camera quick start: a video file or rtsp:// URL")
    p.add_argument("--camera-id", default="cam1", help="Camera id for --source (default cam1)")
    p.add_argument("--fps", type=float, default=5.0, help="Sampling rate for --source (default 5)")
    p.add_argument("--keep-running", action="store_true", help="Do not exit when every file source is done")
    p.add_argument(
        "--events-out",
        metavar="FILE",
        help="Also write every document (frame events, violations, clips; each with its `type`) as a JSON "
        "line to FILE",
    )
    p.add_argument(
        "--metrics-port",
        type=_port,
        metavar="PORT",
        help="The one /metrics port of the run (default ingest.metrics_port, 9101; 0: none); at "
        "metrics_host, default 127.0.0.1",
    )
    p.add_argument(
        "--progress-every",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="Print progress on file sources this often to stderr (default 5; 0: never)",
    )
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("check", help="Exit 0 if a live process of STAGE keeps its heartbeat")
    _common(p)
    p.add_argument("stage", choices=["ingest", "worker", "publisher", "api", "mqtt", "webhooks"])
    p.add_argument(
        "--instance",
        help="The instance to check (default: the configured instance, else this host's processes)",
    )
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("validate-config", help="Check a config file; print every invalid field")
    p.add_argument("file")
    p.set_defaults(func=_cmd_validate_config)

    evaluate = sub.add_parser("evaluate", help="Measure the models on labelled data")
    evaluate_sub = evaluate.add_subparsers(dest="what", required=True)
    models = sub.add_parser("models", help="List or install model weights")
    models_sub = models.add_subparsers(dest="action", required=True)

    from maskwatch.cli import models_commands as detection_commands
    from maskwatch.cli import training_commands

    training_commands.register(sub, evaluate_sub)
    detection_commands.register(sub, evaluate_sub, models_sub)
    return parser


_SECRET_FLAGS = {"redis_url": ("--redis-url", "MASKWATCH_REDIS_URL"), "source": ("--source", "a config file")}


def _warn_secrets_on_command_line(args: argparse.Namespace) -> None:
    """A credential in a flag is readable by every user of the machine (``ps``): say so, and mask it."""
    from maskwatch.core.redaction import redact_url, register_url_secrets

    for attr, (flag, instead) in _SECRET_FLAGS.items():
        value = getattr(args, attr, None)
        if not isinstance(value, str) or not value:  # e.g. `models fetch --from DIR` is a path
            continue
        register_url_secrets(value)
        if redact_url(value) != value:
            log.warning(
                "%s holds a credential, which every user of this machine can read in `ps`; pass it in %s "
                "(or a *_FILE variable naming a file that holds it) instead",
                flag,
                instead,
            )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``maskwatch`` console script."""
    args = build_parser().parse_args(argv)
    from maskwatch.runtime.logs import setup_logging

    setup_logging(args.log_level or "INFO")
    _warn_secrets_on_command_line(args)
    try:
        return int(args.func(args) or 0)
    except ConfigError as e:
        print(str(e), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
