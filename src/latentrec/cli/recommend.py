"""``latentrec recommend``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import click

from latentrec.cli._common import (
    check_output_file,
    debug_option,
    emit_json,
    output_ids,
    run,
)


@click.command()
@debug_option
@click.argument("model_dir", type=click.Path())
@click.option("--user", "users", multiple=True, help="Raw user id (repeatable).")
@click.option("--all", "all_users", is_flag=True, help="Recommend for every training user.")
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True,
              help="Items per user.")
@click.option("--exclude-seen/--include-seen", default=True, show_default=True,
              help="Leave out (or allow) the items each user interacted with in training.")
@click.option("--fallback", is_flag=True, help="Popular items for unknown users.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("-o", "--output", type=click.Path(), default=None,
              help="Write user,item,rank,score rows to a .csv or .parquet file.")
def recommend(model_dir: str, users: tuple[str, ...], all_users: bool, k: int,
              exclude_seen: bool, fallback: bool, as_json: bool, output: str | None) -> None:
    """Top-k items for --user U (one or more) or --all users of the model in MODEL_DIR."""
    if bool(users) == all_users:
        raise click.UsageError("give either --user U (one or more) or --all")
    if as_json and output is not None:
        raise click.UsageError("--json and -o/--output are exclusive")

    def action() -> None:
        from latentrec.models import load

        if output is not None:
            check_output_file(output)
        model = load(model_dir)
        # each user once, in the order given (a repeated --user is one request for that user)
        wanted = model.users_.to_list() if all_users else list(dict.fromkeys(users))
        on_unknown: Literal["raise", "fallback"] = "fallback" if fallback else "raise"
        if output is not None:
            table = model.recommend(wanted, k=k, exclude_seen=exclude_seen,
                                    on_unknown=on_unknown)
            table = table[["user", "item", "rank", "score"] + (["fallback"] if fallback else [])]
            path = Path(output)
            if path.suffix in (".parquet", ".pq"):
                table.to_parquet(path, index=False)
            else:
                table.to_csv(path, index=False)
            click.echo(f"wrote {len(table):,} recommendations for {len(wanted):,} users to {path}",
                       err=True)
            return
        lists = model.recommend_lists(wanted, k, exclude_seen=exclude_seen,
                                      on_unknown=on_unknown)
        for entry, shown in zip(lists, output_ids(model.users_, [str(u) for u in wanted]),
                                strict=True):
            entry["user"] = shown
        if as_json:
            emit_json(lists[0] if len(wanted) == 1 and lists else {"recommendations": lists})
            return
        for entry in lists:
            marker = " (unknown: popular items)" if entry.get("fallback") else ""
            click.echo(f"user {entry['user']}{marker}:")
            for rank, pair in enumerate(entry["items"], start=1):
                click.echo(f"  {rank:>3}. {pair['item']}  ({pair['score']:.4f})")

    run(action)
