"""``latentrec bench``: latentrec against installed peers."""

from __future__ import annotations

import json
import shlex

import click

from latentrec.cli._common import BENCH_DATASETS, BENCH_SUITES, debug_option, emit_json, fail, run


@click.command()
@debug_option
@click.argument("suite", type=click.Choice(BENCH_SUITES), default="explicit")
@click.option("--dataset", type=click.Choice(BENCH_DATASETS), default="ml-100k",
              show_default=True, help="Data set; lastfm and gowalla for the implicit suite.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Folder holding ml-100k/ etc. (default: $LATENTREC_DATA, else the first "
                   "shared/datasets in this folder's parents, else ./datasets).")
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False),
              default="bench-results", show_default=True,
              help="Folder for SUITE_DATASET.json and .png.")
@click.option("--no-peers", is_flag=True, help="Run latentrec's models only.")
@click.option("--only", multiple=True, metavar="TEXT",
              help="Run the contenders whose name contains TEXT (repeatable, any case).")
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True,
              help="Cut-off of the ranking metrics (implicit suite).")
@click.option("--repeats", type=click.IntRange(min=1), default=None,
              help="Timed fits per contender, median reported [default: 3 explicit, "
                   "1 implicit].")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON document, not the table.")
def bench(suite: str, dataset: str, data_dir: str | None, out_dir: str, no_peers: bool,
          only: tuple[str, ...], k: int, repeats: int | None, as_json: bool) -> None:
    """Benchmark latentrec against the installed peer libraries on SUITE.

    \b
    explicit: MovieLens 100K u1.base/u1.test, RMSE and MAE.
    implicit: per-user 80/20 split (seed 42), NDCG@k, precision, recall, MAP, coverage.
    Peers (pip install 'latentrec[bench]'): Surprise, cornac, LIBMF, myFM for ratings;
    implicit, cornac, LightFM for top-N; a missing one is skipped with the reason.
    Each contender runs in its own process (fit time and peak memory are its own).
    Prints a markdown table and writes OUT/SUITE_DATASET.json and .png (fit time vs
    quality).
    """
    # recorded in the JSON so that a table can be reproduced (paths left out: they are local)
    words = ["latentrec", "bench", suite, "--dataset", dataset]
    words += ["--no-peers"] if no_peers else []
    for text in only:
        words += ["--only", text]
    words += ["-k", str(k)] if suite == "implicit" else []
    words += ["--repeats", str(repeats)] if repeats is not None else []
    command = shlex.join(words)

    def action() -> None:
        from latentrec.bench import markdown_table, run_suite, write_results

        result = run_suite(suite, dataset=dataset, data_dir=data_dir, peers=not no_peers,
                           only=only, k=k, repeats=repeats,
                           progress=lambda line: click.echo(line, err=True))
        result.command = command
        written = write_results(result, out_dir, f"{suite}_{dataset}")
        if as_json:
            emit_json(json.loads(written.json.read_text()))
        else:
            click.echo(markdown_table(result))
        if written.plot_skipped is not None:
            click.echo(f"skipping the plot: {written.plot_skipped}", err=True)
        files = [str(path) for path in (written.json, written.plot) if path is not None]
        click.echo(f"wrote {' and '.join(files)}", err=True)
        if result.failed:
            fail(f"{len(result.failed)} contender(s) failed: "
                  + "; ".join(f"{entry.name}: {entry.reason}" for entry in result.failed))

    run(action)
