"""``lab image``: the base image servers start from."""

from __future__ import annotations

from typing import Annotated

import typer

from lab.cli.base import current, handled, lab_config
from lab.cli.output import out, progress
from lab.config import LabConfig

app = typer.Typer(help="The base image servers start from.", no_args_is_help=True)


@app.command("build")
@handled
def image_build(
    ctx: typer.Context,
    rebuild: Annotated[bool, typer.Option(
        help="Build again even if the image is current, every step (packages fetched anew).")]
    = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show every build line.")]
    = False,
) -> None:
    """Build the base image (Debian, systemd, sshd, python3); quick when it is current.

    Without a registry, debian:bookworm is bootstrapped locally with debootstrap first.
    While lab's package cache runs (`lab cache warm`), packages come through it, so after a
    warm-up the image can be made again with no network.
    """
    from lab.targets.base import get_target

    # The lab's target when there is a lab here, else the default's (`make setup` has none).
    config = lab_config(ctx) if current(ctx).file.is_file() else None
    name = config.target if config is not None else LabConfig.model_fields["target"].default
    with progress("lab image build", verbose) as listener:
        tag = get_target(name).prepare_image(config, rebuild, listener)
    out.print(tag or f"nothing to build: the {name} target starts from what its provider "
                     "fetches")
