"""``latentrec recommend``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from latentrec.cli._common import (
    check_output_file,
    debug_option,
    emit_json,
    json_value,
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
@click.option("--include-seen", is_flag=True, help="Allow items the user already rated.")
@click.option("--fallback", is_flag=True, help="Popular items for unknown users.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("-o", "--output", type=click.Path(), default=None,
              help="Write user,item,rank,score rows to a .csv or .parquet file.")
def recommend(model_dir: str, users: tuple[str, ...], all_users: bool, k: int,
              include_seen: bool, fallback: bool, as_json: bool, output: str | None) -> None:
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
        table = model.recommend(wanted, k=k, exclude_seen=not include_seen,
                                on_unknown="fallback" if fallback else "raise")
        columns = ["user", "item", "rank", "score"] + (["fallback"] if fallback else [])
        table = table[columns]
        if output is not None:
            path = Path(output)
            if path.suffix in (".parquet", ".pq"):
                table.to_parquet(path, index=False)
            else:
                table.to_csv(path, index=False)
            click.echo(f"wrote {len(table):,} recommendations for {len(wanted):,} users to {path}",
                       err=True)
            return
        keys = model.users_.canonical(wanted)  # the table's spelling of each user
        groups = {user: group for user, group in table.groupby("user", sort=False)}
        lists = []
        for key, shown in zip(keys, output_ids(model.users_, [str(u) for u in wanted]),
                              strict=True):
            group = groups.get(key, table.iloc[:0])
            entry: dict[str, Any] = {"user": shown}
            if fallback:
                entry["fallback"] = key not in model.users_
            entry["items"] = [{"item": json_value(i), "score": json_value(s)}
                              for i, s in zip(group["item"], group["score"], strict=True)]
            lists.append(entry)
        if as_json:
            emit_json(lists[0] if len(wanted) == 1 and lists else {"recommendations": lists})
            return
        for entry in lists:
            marker = " (unknown: popular items)" if entry.get("fallback") else ""
            click.echo(f"user {entry['user']}{marker}:")
            for rank, pair in enumerate(entry["items"], start=1):
                click.echo(f"  {rank:>3}. {pair['item']}  ({pair['score']:.4f})")

    run(action)
