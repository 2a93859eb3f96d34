"""``python -m server_launcher pkg.mod:create_app``: serve an app until Ctrl-C.

Prints the URL on stdout (one line, for scripts), streams the server's output to stderr, and
stops the server cleanly on Ctrl-C (SIGINT) or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence

from ._errors import ServerStartError
from ._launch import DEMO_APP, launch_server


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m server_launcher",
        description="Run an ASGI app under uvicorn on a free port until Ctrl-C.",
    )
    parser.add_argument(
        "app", nargs="?", default=DEMO_APP, help=f"import string (default {DEMO_APP})"
    )
    parser.add_argument(
        "--health-path", default="/health", help="must answer 200 (default /health)"
    )
    parser.add_argument("--no-factory", action="store_true", help="app is the ASGI app itself")
    parser.add_argument("--startup-timeout", type=float, default=20.0)
    parser.add_argument("--shutdown-timeout", type=float, default=10.0)
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="set for the server"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    env: dict[str, str | None] = {}
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep:
            _parser().error(f"--env needs NAME=VALUE, got {item!r}")
        env[name] = value

    def on_sigterm(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        launcher = launch_server(
            args.app,
            factory=not args.no_factory,
            health_path=args.health_path,
            env=env,
            startup_timeout=args.startup_timeout,
            shutdown_timeout=args.shutdown_timeout,
            output=sys.stderr,
        )
        with launcher as server:
            print(server.url, flush=True)
            print(
                f"server-launcher: serving {args.app} at {server.url} (pid {server.pid}); "
                "press Ctrl-C to stop",
                file=sys.stderr,
                flush=True,
            )
            try:
                while server.wait(timeout=1.0) is None:
                    pass
            except KeyboardInterrupt:
                print("server-launcher: stopping", file=sys.stderr, flush=True)
            if server.returncode is not None:
                print("server-launcher: the server exited on its own", file=sys.stderr)
                return 1
    except (ValueError, TypeError) as exc:
        print(f"server-launcher: {exc}", file=sys.stderr)
        return 2
    except ServerStartError as exc:
        print(f"server-launcher: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
