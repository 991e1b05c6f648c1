"""``latentrec predict``."""

from __future__ import annotations

import click

from latentrec.cli._common import debug_option, emit_json, json_value, output_ids, run


@click.command()
@debug_option
@click.argument("model_dir", type=click.Path())
@click.option("--user", required=True, help="Raw user id.")
@click.option("--item", required=True, help="Raw item id.")
@click.option("--fallback", is_flag=True,
              help="Predict for unknown ids with the fallback instead of failing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def predict(model_dir: str, user: str, item: str, fallback: bool, as_json: bool) -> None:
    """Predict USER's rating (or score) of ITEM with the model in MODEL_DIR."""

    def action() -> None:
        from latentrec.models import load

        model = load(model_dir)
        value = model.predict(user, item, on_unknown="fallback" if fallback else "raise")
        user_id, item_id = output_ids(model.users_, [user])[0], output_ids(model.items_, [item])[0]
        if as_json:
            # the HTTP API's record: fallback marks a prediction made for an unknown id
            unknown = user not in model.users_ or item not in model.items_
            emit_json({"user": user_id, "item": item_id, "prediction": json_value(value),
                       "fallback": bool(fallback and unknown)})
        else:
            click.echo(f"{value:.4f}")

    run(action)
