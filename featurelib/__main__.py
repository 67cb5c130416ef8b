"""``featurelib`` (also ``python -m featurelib``): the library's commands in one Click group.

    featurelib generate    seeded synthetic raw events          (python -m featurelib.generate)
    featurelib batch       raw events -> feature Parquet          (python -m featurelib.batch)
    featurelib stream      the stream processor and its replay    (python -m featurelib.stream)
    featurelib demo        the main job end to end, as `make demo` runs it (python -m featurelib.demo)

Each takes the shared ``--repo`` option (``FEAST_REPO`` in the environment). Commands are loaded
when used, so ``featurelib generate`` does not import Feast. ``feature_utils.py`` stays the
repository's own tool for validation, audits and docs.
"""

from __future__ import annotations

import importlib

import click

COMMANDS = {
    "generate": ("featurelib.generate", "main"),
    "batch": ("featurelib.batch", "main"),
    "stream": ("featurelib.stream.__main__", "cli"),
    "demo": ("featurelib.demo", "main"),
}


class _Commands(click.Group):
    """A group whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attribute = COMMANDS[name]
        return getattr(importlib.import_module(module), attribute)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def cli() -> None:
    """The feature store's jobs: generate events, compute features, run the stream processor, the demo."""


if __name__ == "__main__":
    cli()
