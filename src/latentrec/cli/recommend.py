"""``latentrec recommend``."""

from __future__ import annotations

from pathlib import Path

import click

from latentrec.cli._common import emit_json, json_value, run


@click.command()
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.option("--user", "users", multiple=True, help="Raw user id (repeatable).")
@click.option("--all", "all_users", is_flag=True, help="Recommend for every training user.")
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True,
              help="Items per user.")
@click.option("--include-seen", is_flag=True, help="Allow items the user already rated.")
@click.option("--fallback", is_flag=True, help="Popular items for unknown users.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write user,item,rank,score rows to a .csv or .parquet file.")
def recommend(model_dir: str, users: tuple[str, ...], all_users: bool, k: int,
              include_seen: bool, fallback: bool, as_json: bool, output: str | None) -> None:
    """Top-k items for --user U (one or more) or --all users of the model in MODEL_DIR."""
    if bool(users) == all_users:
        raise click.UsageError("give either --user U (one or more) or --all")
    if as_json and output:
        raise click.UsageError("--json and -o/--output are exclusive")

    def action() -> None:
        from latentrec.models import load

        model = load(model_dir)
        wanted = model.users_.to_list() if all_users else list(users)
        table = model.recommend(wanted, k=k, exclude_seen=not include_seen,
                                on_unknown="fallback" if fallback else "raise")
        table = table[["user", "item", "rank", "score"]]
        if output:
            path = Path(output)
            if path.suffix in (".parquet", ".pq"):
                table.to_parquet(path, index=False)
            else:
                table.to_csv(path, index=False)
            click.echo(f"wrote {len(table):,} recommendations for {len(wanted):,} users to {path}",
                       err=True)
            return
        lists = [{"user": json_value(user),
                  "items": [{"item": json_value(i), "score": json_value(s)}
                            for i, s in zip(group["item"], group["score"], strict=True)]}
                 for user, group in table.groupby("user", sort=False)]
        if as_json:
            emit_json(lists[0] if len(wanted) == 1 and lists else {"recommendations": lists})
            return
        for entry in lists:
            click.echo(f"user {entry['user']}:")
            for rank, pair in enumerate(entry["items"], start=1):
                click.echo(f"  {rank:>3}. {pair['item']}  ({pair['score']:.4f})")

    run(action)
