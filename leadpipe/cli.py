"""The ``leadpipe`` operator command. Each group lives in its own module with ``register``."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

from leadpipe.runtime.keystore import install_from_env

#: Modules contributing subcommands; a service's own CLI module is listed once it exists.
COMMAND_MODULES = (
    "leadpipe.commands.dev",
    "leadpipe.commands.schemas",
    "leadpipe.commands.topics",
    "leadpipe.commands.ops",
    "leadpipe.commands.privacy",
    "services.ingest.cli",
    "services.scoring.cli",
    "services.nurture.cli",
    "services.notifier.cli",
    "services.console.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="leadpipe", description="leadpipe operator tools")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        if importlib.util.find_spec(name) is None:
            continue
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    install_from_env("cli")  # privacy hook: reads and writes personal fields with the same keys
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
