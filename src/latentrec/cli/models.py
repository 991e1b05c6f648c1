"""``latentrec models``: the installed model kinds."""

from __future__ import annotations

import click

from latentrec.cli._common import debug_option


@click.command()
@debug_option
def models() -> None:
    """List the model kinds: what each is made for, what it monitors, its parameters."""
    from latentrec.models import model_kinds

    for kind, model_class in sorted(model_kinds().items()):
        defaults = model_class().get_params()
        made_for = {"explicit": "ratings", "implicit": "implicit feedback",
                    "any": "ratings or weights"}[model_class.feedback]
        trains = (f"trains in epochs, validates {model_class.validator.metric}"
                  if model_class.trains_in_epochs else "closed form")
        click.echo(f"{kind:<12} {model_class.__name__} - {made_for}; {trains}")
        click.echo("    " + ", ".join(f"{k}={v!r}" for k, v in defaults.items()))
