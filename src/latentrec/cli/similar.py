"""``latentrec similar``: the items (or users) closest to given ones."""

from __future__ import annotations

from typing import Any

import click

from latentrec.cli._common import debug_option, emit_json, json_value, output_ids, run


@click.command()
@debug_option
@click.argument("model_dir", type=click.Path())
@click.option("--item", "items", multiple=True, help="Raw item id (repeatable).")
@click.option("--user", "users", multiple=True, help="Raw user id (repeatable).")
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True,
              help="Neighbours per id.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def similar(model_dir: str, items: tuple[str, ...], users: tuple[str, ...], k: int,
            as_json: bool) -> None:
    """The k items most similar to each --item I (or users to each --user U), by the cosine
    of the model's factors."""
    if bool(items) == bool(users):
        raise click.UsageError("give either --item I (one or more) or --user U (one or more)")

    def action() -> None:
        from latentrec.models import load

        model = load(model_dir)
        side = "items" if items else "users"
        wanted = list(dict.fromkeys(items or users))
        id_map = model.items_ if side == "items" else model.users_
        noun = side[:-1]
        table = (model.similar_items(wanted, k=k) if side == "items"
                 else model.similar_users(wanted, k=k))
        groups = {key: group for key, group in table.groupby(noun, sort=False)}
        lists: list[dict[str, Any]] = []
        for key, shown in zip(id_map.canonical(wanted), output_ids(id_map, wanted),
                              strict=True):
            group = groups.get(key, table.iloc[:0])
            # the HTTP API's shape: {"item": I, "items": [{"item": J, "score": S}, ...]}
            lists.append({noun: shown, side: [
                {noun: json_value(other), "score": json_value(score)}
                for other, score in zip(group[f"similar_{noun}"], group["score"], strict=True)]})
        if as_json:
            emit_json(lists[0] if len(lists) == 1 else {"similar": lists})
            return
        for entry in lists:
            click.echo(f"{noun} {entry[noun]}:")
            for rank, pair in enumerate(entry[side], start=1):
                click.echo(f"  {rank:>3}. {pair[noun]}  ({pair['score']:.4f})")

    run(action)
