"""``latentrec demo``: the tour on built-in data."""

from __future__ import annotations

import time

import click

from latentrec.cli._common import debug_option, read_data, run


@click.command()
@debug_option
@click.option("--data", "data_path", type=click.Path(dir_okay=False), default=None,
              help="Use this interaction file instead of the built-in synthetic data.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def demo(data_path: str | None, seed: int, quiet: bool) -> None:
    """Train, evaluate, recommend, save and reload on the built-in synthetic data."""

    def action() -> None:
        import tempfile

        from latentrec.data import random_split
        from latentrec.datasets import synthetic
        from latentrec.evaluation import evaluate as run_evaluation
        from latentrec.models import BiasedMF, load

        if data_path is None:
            data = synthetic(n_users=2000, n_items=1000, density=0.04, seed=seed)
            click.echo(f"data: built-in synthetic ratings (seed {seed}): {data}")
        else:
            data = read_data(data_path, "auto", None, False, "error")
            click.echo(f"data: {data}")
        split = random_split(data, 0.2, seed=seed)
        click.echo(f"split: {len(split.train):,} train / {len(split.test):,} test interactions")
        model = BiasedMF(seed=seed)
        started = time.perf_counter()
        model.fit(split.train, show_progress=not quiet)
        click.echo(f"trained {model!r}\n  in {time.perf_counter() - started:.2f} s")
        table = run_evaluation(model, split.test, k=10)
        click.echo("test metrics:")
        for row in table.itertuples():
            click.echo(f"  {row.metric:<22}{row.value:.4f}")
        user = split.train.users.ids_of([0])[0]
        click.echo(f"top 5 for user {user}:")
        for row in model.recommend(user, k=5).itertuples():
            click.echo(f"  {row.rank}. item {row.item}  (predicted {row.score:.3f})")
        item = split.train.items.ids_of([0])[0]
        similar = model.similar_items(item, k=3)["similar_item"].tolist()
        click.echo(f"items most similar to item {item}: {similar}")
        with tempfile.TemporaryDirectory() as directory:
            model.save(directory)
            again = load(directory)
            same = bool((again.predict([user] * 5, split.train.items.ids_of(range(5)))
                         == model.predict([user] * 5, split.train.items.ids_of(range(5)))).all())
            click.echo(f"saved and reloaded: predictions identical = {same}")

    run(action)
