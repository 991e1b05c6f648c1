"""``latentrec evaluate``."""

from __future__ import annotations

import click

from latentrec.cli._common import data_options, debug_option, emit_json, json_value, read_data, run


@click.command()
@debug_option
@click.argument("model_dir", type=click.Path())
@click.argument("test_data", type=click.Path(dir_okay=False))
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True,
              help="Cut-off of the ranking metrics.")
@click.option("--relevance-threshold", type=float, default=None,
              help="Only test items rated at least this count as relevant.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object of metrics.")
@data_options
def evaluate(model_dir: str, test_data: str, k: int, relevance_threshold: float | None,
             as_json: bool, fmt: str, sep: str | None, implicit: bool, duplicates: str) -> None:
    """Score the model in MODEL_DIR on TEST_DATA (RMSE, MAE, NDCG@k, ...)."""

    def action() -> None:
        from latentrec.evaluation import evaluate as run_evaluation
        from latentrec.models import load

        model = load(model_dir)
        test = read_data(test_data, fmt, sep, implicit or model.feedback_ == "implicit", duplicates)
        table = run_evaluation(model, test, k=k, relevance_threshold=relevance_threshold)
        if as_json:
            emit_json({row.metric: json_value(row.value) for row in table.itertuples()})
        else:
            for metric, value in zip(table["metric"], table["value"].astype(float), strict=True):
                shown = f"{value:,.0f}" if float(value).is_integer() and value > 1 else (
                    f"{value:.4f}")
                click.echo(f"{metric:<22}{shown}")

    run(action)
