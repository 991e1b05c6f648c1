"""``latentrec recommend``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

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
@click.option("--features", "features", default=None, metavar="JSON",
              help="Instead of --user: a user the model does not know, by their features "
                   "(models trained with user features), e.g. '{\"age\": 31, \"occupation\": "
                   "\"writer\"}'.")
@click.option("--interaction", "interactions", multiple=True, metavar="ITEM[=RATING]",
              help="Instead of --user: an item a user the model does not know interacted with, "
                   "and their rating or weight (repeatable; folded in, with --features or "
                   "alone).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("-o", "--output", type=click.Path(), default=None,
              help="Write user,item,rank,score rows to a .csv or .parquet file.")
def recommend(model_dir: str, users: tuple[str, ...], all_users: bool, k: int,
              exclude_seen: bool, fallback: bool, features: str | None,
              interactions: tuple[str, ...], as_json: bool, output: str | None) -> None:
    """Top-k items for --user U (one or more) or --all users of the model in MODEL_DIR, or
    for one user it does not know (anonymous), given by --features and/or --interaction."""
    anonymous = features is not None or bool(interactions)
    if sum((bool(users), all_users, anonymous)) != 1:
        raise click.UsageError("give either --user U (one or more), --all, or an anonymous "
                               "user's --features and/or --interaction")
    if as_json and output is not None:
        raise click.UsageError("--json and -o/--output are exclusive")
    if anonymous and (fallback or output is not None):
        raise click.UsageError("--fallback and -o/--output are for --user and --all")
    if anonymous:
        run(lambda: _anonymous(model_dir, features, interactions, k, exclude_seen, as_json))
        return

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


def _anonymous(model_dir: str, features: str | None, interactions: tuple[str, ...], k: int,
               exclude_seen: bool, as_json: bool) -> None:
    """``recommend_new_user`` for the user the options describe, printed like a known one."""
    import json
    import math

    from latentrec.errors import InvalidParameterError
    from latentrec.models import FactorModel, load

    def finite(text: str) -> float:
        number = float(text)
        if not math.isfinite(number):  # 1e999 parses as inf
            raise ValueError(f"{text} is not a finite number")
        return number

    def refuse(name: str) -> Any:  # Python's JSON reader takes NaN and Infinity
        raise ValueError(f"{name} is not a JSON number")

    values: dict[str, Any] | None = None
    if features is not None:
        try:
            values = json.loads(features, parse_float=finite, parse_constant=refuse)
        except ValueError as error:
            raise InvalidParameterError(f"--features: not valid JSON ({error})") from None
        if not isinstance(values, dict):
            raise InvalidParameterError(f"--features: expected a JSON object of feature "
                                        f"names and values, got {type(values).__name__}")
    items: list[str] = []
    ratings: list[float | None] = []
    for given in interactions:
        item, equals, rating = given.partition("=")
        if not item:
            raise InvalidParameterError(f"--interaction: expected ITEM or ITEM=RATING, got "
                                        f"{given!r}")
        try:
            value = float(rating) if equals else None
        except ValueError:
            raise InvalidParameterError(f"--interaction {given}: the rating must be a number"
                                        ) from None
        if value is not None and not math.isfinite(value):
            raise InvalidParameterError(f"--interaction {given}: the rating must be a finite "
                                        f"number")
        items.append(item)
        ratings.append(value)
    rated = [value is not None for value in ratings]
    if any(rated) and not all(rated):
        raise InvalidParameterError("--interaction: give a rating for every item or for none")
    model = load(model_dir)
    if not isinstance(model, FactorModel):
        raise InvalidParameterError(f"this {model.kind} model does not take a user it does not "
                                    f"know (fold-in)")
    try:
        rated_values = [value for value in ratings if value is not None]
        table = model.recommend_new_user(items, rated_values or None, k=k,
                                         exclude_seen=exclude_seen, features=values)
    except InvalidParameterError as error:
        message = str(error)
        for prefix in ("features.", "features: "):  # the library names the feature
            if message.startswith(prefix):
                raise InvalidParameterError(f"--features: {message.removeprefix(prefix)}"
                                            ) from None
        raise
    scored = [{"item": item, "score": score} for item, score in zip(
        table["item"].tolist(), table["score"].astype(float).tolist(), strict=True)]
    if as_json:
        emit_json({"user": None, "items": scored})
        return
    click.echo("anonymous user:")
    for rank, pair in enumerate(scored, start=1):
        click.echo(f"  {rank:>3}. {pair['item']}  ({pair['score']:.4f})")
