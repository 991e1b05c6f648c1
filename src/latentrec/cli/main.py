"""``latentrec`` command-line entry point: the command group; each command is a module of its
own. Commands parse arguments, call the library and format results; they hold no logic."""

from __future__ import annotations

import click

from latentrec.cli._common import Context
from latentrec.cli.add import add_items, add_users
from latentrec.cli.bench import bench
from latentrec.cli.demo import demo
from latentrec.cli.evaluate import evaluate
from latentrec.cli.models import models
from latentrec.cli.predict import predict
from latentrec.cli.recommend import recommend
from latentrec.cli.serve import serve
from latentrec.cli.similar import similar
from latentrec.cli.train import train


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="latentrec", prog_name="latentrec")
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
def cli(debug: bool) -> None:
    """Learn latent factors from ratings or clicks; predict, recommend, evaluate.

    \b
    Quick start:
      latentrec demo
      latentrec train ratings.csv -o model/
      latentrec recommend model/ --user 42 -k 10
    """
    Context.debug = debug


for command in (train, models, evaluate, predict, recommend, similar, add_items, add_users, demo,
                serve, bench):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="latentrec")


if __name__ == "__main__":
    main()
