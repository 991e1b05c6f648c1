"""``latentrec add-items`` and ``latentrec add-users``: extend a trained model with ids known
only by their features, without retraining."""

from __future__ import annotations

from typing import Any

import click

from latentrec.cli._common import debug_option, emit_json, read_feature_file, run


def _command(side: str) -> Any:
    noun = side[:-1]
    help_text = (
        f"Add {side} known only by their features to the model in MODEL_DIR, without "
        f"retraining.\n\n"
        f"FEATURES is {'an' if noun == 'item' else 'a'} {noun} feature table (CSV/TSV/Parquet, "
        f"one row per new {noun} id, the model's feature names as columns; see "
        f"docs/features.md), read with the model's vocabulary: values it does not hold are "
        f"left out with a warning. Each new {noun}'s vector is the sum of its features' "
        f"embeddings. {side.capitalize()} the model already has are refused. The model must "
        f"have been trained with --{noun}-features.")

    @click.command(name=f"add-{side}", help=help_text)
    @debug_option
    @click.argument("model_dir", type=click.Path())
    @click.argument("features", type=click.Path())
    @click.option(f"--{noun}-features-id", "id_col", default=None, metavar="NAME",
                  help=f"The column of FEATURES holding the {noun} ids [default: the first "
                       f"column].")
    @click.option("-o", "--output", type=click.Path(), default=None,
                  help="Save the extended model here [default: replace MODEL_DIR].")
    @click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
    def add(model_dir: str, features: str, id_col: str | None, output: str | None,
            as_json: bool) -> None:
        def action() -> None:
            from latentrec.errors import InvalidParameterError
            from latentrec.models import FactorModel, load
            from latentrec.persistence import check_writable

            target = model_dir if output is None else output
            if output is not None:
                if not output.strip():
                    raise InvalidParameterError("-o/--output: the directory name is empty")
                check_writable(output)
            model = load(model_dir)
            if not isinstance(model, FactorModel) or side not in model.features_:
                raise InvalidParameterError(
                    f"{model_dir}: this {model.kind} model was trained without {noun} "
                    f"features, so it cannot take new {side} by their features; train one "
                    f"with --{noun}-features")
            table = read_feature_file(features, id_col)
            trained = model.features_[side].kinds
            differ = {name: trained[name] for name, kind in table.kinds.items()
                      if name in trained and kind != trained[name]}
            if differ:  # read those columns as the kinds they had in training (zip codes)
                table = read_feature_file(features, id_col, differ)
            before = model.n_items if side == "items" else model.n_users
            if side == "items":
                model.add_items(table)
            else:
                model.add_users(table)
            # the save writes a new directory and renames it into place: a crash leaves the
            # old model or the new one, never half of one
            model.save(target)
            total = model.n_items if side == "items" else model.n_users
            added = total - before
            if as_json:
                emit_json({"added": added, side: total, "model_dir": str(target)})
            else:
                click.echo(f"added {added:,} {side if added != 1 else noun} to the "
                           f"{model.kind} model ({total:,} {side}); saved to {target}")

        run(action)

    return add


add_items = _command("items")
add_users = _command("users")
