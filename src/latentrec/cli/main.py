"""``latentrec`` command-line entry point.

Commands parse arguments, call the library and format results; they hold no logic. Errors are
mapped here, in one place: one line on stderr and exit status 1 (2 for usage errors); ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import contextlib
import json
import math
import shlex
import sys
import time
import warnings
from pathlib import Path
from typing import Any, NoReturn

import click

FORMAT_CHOICES = ("auto", "csv", "tsv", "parquet", "ml-100k", "ml-1m", "ml-latest")
DUPLICATE_CHOICES = ("error", "last", "mean", "sum")
# literal for the same reason; a test checks them against latentrec.bench.SUITE_DATASETS
BENCH_SUITES = ("explicit", "implicit")
BENCH_DATASETS = ("ml-100k", "lastfm", "gowalla")


class _Context:
    debug: bool = False


def _fail(message: str) -> NoReturn:
    click.echo(f"latentrec: error: {message}", err=True)
    sys.exit(1)


def _run(action: Any) -> Any:
    """Call ``action``; turn expected errors into one line on stderr."""
    from latentrec.errors import LatentrecError

    try:
        # warnings are one line each on stderr, as they happen (not Python's two-line form)
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = _show_warning
            return action()
    except (LatentrecError, FileNotFoundError, PermissionError, IsADirectoryError) as error:
        if _Context.debug:
            raise
        text = str(error)
        if isinstance(error, (FileNotFoundError, PermissionError)) and error.filename:
            text = f"{error.filename}: {error.strerror or text}"
        _fail(text.splitlines()[0] if text else type(error).__name__)
    except TypeError as error:
        if _Context.debug:
            raise
        _fail(str(error).splitlines()[0])


def _show_warning(message: Warning | str, category: type[Warning], *args: Any,
                  **kwargs: Any) -> None:
    click.echo(f"latentrec: warning: {str(message).splitlines()[0]}", err=True)


def _json_value(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _emit_json(document: Any) -> None:
    click.echo(json.dumps(document, allow_nan=False))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="latentrec", prog_name="latentrec")
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
def cli(debug: bool) -> None:
    """Learn latent factors from ratings or clicks; predict, recommend, evaluate.

    \b
    Quick start:
      latentrec demo
      latentrec train ratings.csv -o model/
      latentrec recommend model/ --user 42 -k 10
    """
    _Context.debug = debug


def _read(path: str, fmt: str, sep: str | None, implicit: bool, duplicates: str) -> Any:
    from latentrec.data import read_interactions

    return read_interactions(path, format=fmt, sep=sep,
                             feedback="implicit" if implicit else "explicit",
                             duplicates=duplicates)  # type: ignore[arg-type]


def _data_options(function: Any) -> Any:
    options = [
        click.option("--format", "fmt", type=click.Choice(FORMAT_CHOICES), default="auto",
                     show_default=True, help="File format; 'auto' detects it."),
        click.option("--sep", default=None, help="Column separator (default: detected)."),
        click.option("--implicit", is_flag=True,
                     help="Values are weights/counts (or absent), not ratings."),
        click.option("--duplicates", type=click.Choice(DUPLICATE_CHOICES), default="error",
                     show_default=True, help="What to do with repeated (user, item) pairs."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


class _ModelKind(click.ParamType):  # type: ignore[type-arg]
    """A registered model kind, checked when used (so that ``--help`` imports no models)."""

    name = "kind"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        from latentrec.models import model_kinds

        kinds = model_kinds()
        if value not in kinds:
            self.fail(f"{value!r} is not a model kind; choose from {', '.join(sorted(kinds))} "
                      f"(latentrec models lists them)", param, ctx)
        return str(value)


#: options that `train` offers for every model, and what they mean to models without them
_COMMON_OPTIONS = ("factors", "epochs", "lr", "reg", "seed", "device")


def _model_params(model_class: Any, kind: str, given: dict[str, Any],
                  extra: dict[str, Any]) -> dict[str, Any]:
    """Hyperparameters for ``model_class`` from the common options and ``-p`` pairs."""
    from latentrec.errors import InvalidParameterError

    names = set(model_class.parameter_names())
    params: dict[str, Any] = {}
    for name, value in given.items():
        if name in names:
            params[name] = value
        elif name == "seed":
            continue  # a deterministic model has nothing to seed: the same result either way
        elif name == "epochs" and not model_class.trains_in_epochs:
            raise InvalidParameterError(f"--epochs: {kind} is fitted in closed form, in one "
                                        f"pass; it has no epochs")
        else:
            raise InvalidParameterError(f"--{name}: {kind} has no parameter {name!r}; its "
                                        f"parameters: {', '.join(sorted(names)) or 'none'}")
    for name, value in extra.items():
        if name not in names:
            raise InvalidParameterError(f"-p {name}: {kind} has no parameter {name!r}; its "
                                        f"parameters: {', '.join(sorted(names)) or 'none'}")
        params[name] = value
    return params


@cli.command()
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "model_dir", required=True, type=click.Path(file_okay=False),
              help="Directory to save the model in.")
@click.option("--model", "kind", type=_ModelKind(), default="biased-mf", show_default=True,
              help="Model kind (`latentrec models` lists them).")
@click.option("--factors", type=click.IntRange(min=1), default=None, help="Latent factors.")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Passes over the data.")
@click.option("--lr", type=float, default=None, help="Learning rate.")
@click.option("--reg", type=float, default=None, help="L2 regularisation of the factors.")
@click.option("--seed", type=click.IntRange(min=0), default=None,
              help="Random seed (deterministic models ignore it).")
@click.option("--device", default=None, help="auto, cpu, cuda or mps.")
@click.option("-p", "--param", "extra", multiple=True, metavar="NAME=VALUE",
              help="Any other hyperparameter, e.g. -p alpha=5 -p engine=minibatch (repeatable).")
@click.option("--valid-fraction", type=float, default=None,
              help="Hold out this fraction of DATA, stop early on it, then refit on all of "
                   "DATA for the best number of epochs (see --no-refit).")
@click.option("--patience", type=click.IntRange(min=1), default=3, show_default=True,
              help="Epochs without validation improvement before stopping.")
@click.option("--refit/--no-refit", default=True, show_default=True,
              help="With --valid-fraction: refit on all of DATA (or save the model trained on "
                   "the rest).")
@click.option("--checkpoint-dir", type=click.Path(file_okay=False), default=None,
              help="Save the training state here (resumable with --resume).")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=1, show_default=True,
              help="Epochs between checkpoints.")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False), default=None,
              help="Continue the run saved in this checkpoint directory.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@_data_options
def train(data: str, model_dir: str, kind: str, factors: int | None, epochs: int | None,
          lr: float | None, reg: float | None, seed: int | None, device: str | None,
          extra: tuple[str, ...], valid_fraction: float | None, patience: int, refit: bool,
          checkpoint_dir: str | None, checkpoint_every: int, resume_dir: str | None,
          quiet: bool, as_json: bool, fmt: str, sep: str | None, implicit: bool,
          duplicates: str) -> None:
    """Train a model on DATA (CSV/TSV/Parquet/MovieLens) and save it to MODEL_DIR.

    \b
    Models: biased-mf (default), bayesian-mf, mf, als for ratings; ials, bpr, popular,
    item-knn, ease for implicit feedback (add --implicit when DATA holds counts or no
    values); `latentrec models` lists every installed kind with its parameters.
    """
    given: dict[str, Any] = {name: value for name, value in (
        ("factors", factors), ("epochs", epochs), ("lr", lr), ("reg", reg),
        ("seed", seed), ("device", device)) if value is not None}
    extra_params = _parse_params(extra)

    def action() -> None:
        from latentrec.data import random_split
        from latentrec.errors import InvalidParameterError
        from latentrec.models import model_kinds
        from latentrec.training import Checkpoint, Trainer

        model_class = model_kinds()[kind]
        params = _model_params(model_class, kind, given, extra_params)
        model = model_class(**params)  # bad hyperparameters fail before any reading
        interactions = _read(data, fmt, sep, implicit, duplicates)
        everything = interactions
        valid = None
        if valid_fraction is not None:
            if model.monitor is None:
                raise InvalidParameterError(f"--valid-fraction: {kind} is fitted in closed "
                                            f"form; there are no epochs to validate")
            if not 0.0 < valid_fraction < 1.0:
                raise InvalidParameterError(f"--valid-fraction must be between 0 and 1, got "
                                            f"{valid_fraction}")
            # a model that never stops early (BayesianMF) still reports its validation curve
            with contextlib.suppress(InvalidParameterError):
                model.set_params(patience=patience)
            interactions, valid = random_split(interactions, valid_fraction,
                                               seed=params.get("seed", 0))
        trainer = Trainer(
            show_progress=not quiet and not as_json,
            checkpoint=None if checkpoint_dir is None else Checkpoint(checkpoint_dir,
                                                                      every=checkpoint_every),
            resume=resume_dir)
        started = time.perf_counter()
        model.fit(interactions, valid=valid, trainer=trainer)
        monitor = model.monitor
        summary: dict[str, Any] = {
            "model": kind, "model_dir": str(Path(model_dir)),
            "interactions": len(everything), "users": everything.n_users,
            "items": everything.n_items, "epochs": len(model.history_),
        }
        note = ""
        if valid is not None and monitor is not None:
            metric, mode = monitor
            values = [h[metric] for h in model.history_]
            best = min(values) if mode == "min" else max(values)
            best_epoch = values.index(best) + 1
            # a model that does not stop early is refit as configured
            epochs_again = best_epoch if model.config.patience is not None else len(values)
            summary[metric] = _json_value(best)
            summary["best_epoch"] = best_epoch
            summary["refit"] = refit
            note = f", best {metric} {best:.4f} at epoch {best_epoch}"
            if refit:
                model = model_class(**{**params, "epochs": epochs_again})
                model.fit(everything, show_progress=not quiet and not as_json)
                note += (f"; refit on all {len(everything):,} interactions for "
                         f"{epochs_again} epochs")
            else:
                note += (f"; saved the model trained on {len(interactions):,} interactions "
                         f"(--no-refit; {len(valid):,} held out)")
        seconds = time.perf_counter() - started
        model.save(model_dir)
        last = model.history_[-1] if model.history_ else {}
        summary["seconds"] = round(seconds, 3)
        summary["loss"] = _json_value(last.get("loss"))
        if as_json:
            _emit_json(summary)
        else:
            click.echo(
                f"trained {kind} on {len(interactions):,} interactions "
                f"({interactions.n_users:,} users, {interactions.n_items:,} items) in "
                f"{seconds:.2f} s, {len(model.history_)} epochs{note}; saved to {model_dir}"
            )

    _run(action)


@cli.command()
def models() -> None:
    """List the model kinds: what each is made for, what it monitors, its parameters."""
    from latentrec.models import model_kinds

    for kind, model_class in sorted(model_kinds().items()):
        defaults = model_class().get_params()
        made_for = {"explicit": "ratings", "implicit": "implicit feedback",
                    "any": "ratings or weights"}[model_class.feedback]
        trains = (f"trains in epochs, validates {model_class.validator.metric}"
                  if model_class.trains_in_epochs else "closed form")
        click.echo(f"{kind:<12} {model_class.__name__} - {made_for}; {trains}")
        click.echo("    " + ", ".join(f"{k}={v!r}" for k, v in defaults.items()))


def _parse_params(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``NAME=VALUE`` pairs; values are read as JSON when they parse (numbers, true, null)."""
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"expected NAME=VALUE, got {pair!r}",
                                     param_hint="'-p' / '--param'")
        try:
            params[name.strip().replace("-", "_")] = json.loads(text)
        except json.JSONDecodeError:
            params[name.strip().replace("-", "_")] = text
    return params


@cli.command()
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.argument("test_data", type=click.Path(dir_okay=False))
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True,
              help="Cut-off of the ranking metrics.")
@click.option("--relevance-threshold", type=float, default=None,
              help="Only test items rated at least this count as relevant.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object of metrics.")
@_data_options
def evaluate(model_dir: str, test_data: str, k: int, relevance_threshold: float | None,
             as_json: bool, fmt: str, sep: str | None, implicit: bool, duplicates: str) -> None:
    """Score the model in MODEL_DIR on TEST_DATA (RMSE, MAE, NDCG@k, ...)."""

    def action() -> None:
        from latentrec.evaluation import evaluate as run_evaluation
        from latentrec.models import load

        model = load(model_dir)
        test = _read(test_data, fmt, sep, implicit or model.feedback_ == "implicit", duplicates)
        table = run_evaluation(model, test, k=k, relevance_threshold=relevance_threshold)
        if as_json:
            _emit_json({row.metric: _json_value(row.value) for row in table.itertuples()})
        else:
            for metric, value in zip(table["metric"], table["value"].astype(float), strict=True):
                shown = f"{value:,.0f}" if float(value).is_integer() and value > 1 else (
                    f"{value:.4f}")
                click.echo(f"{metric:<22}{shown}")

    _run(action)


@cli.command()
@click.argument("model_dir", type=click.Path(file_okay=False))
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
        user_id, item_id = model.users_.canonical([user])[0], model.items_.canonical([item])[0]
        if as_json:
            _emit_json({"user": user_id, "item": item_id, "prediction": _json_value(value)})
        else:
            click.echo(f"{value:.4f}")

    _run(action)


@cli.command()
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
        lists = [{"user": _json_value(user),
                  "items": [{"item": _json_value(i), "score": _json_value(s)}
                            for i, s in zip(group["item"], group["score"], strict=True)]}
                 for user, group in table.groupby("user", sort=False)]
        if as_json:
            _emit_json(lists[0] if len(wanted) == 1 and lists else {"recommendations": lists})
            return
        for entry in lists:
            click.echo(f"user {entry['user']}:")
            for rank, pair in enumerate(entry["items"], start=1):
                click.echo(f"  {rank:>3}. {pair['item']}  ({pair['score']:.4f})")

    _run(action)


@cli.command()
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
            data = _read(data_path, "auto", None, False, "error")
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

    _run(action)


@cli.command()
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes (each holds the model in memory).")
@click.option("--max-k", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Largest k a request may ask for.")
@click.option("--max-batch", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Most users or pairs in one request.")
@click.option("--ann", type=click.Choice(["ivf", "hnsw"]), default=None,
              help="Approximate top-k with a faiss index (pip install 'latentrec[ann]').")
def serve(model_dir: str, host: str, port: int, workers: int, max_k: int,
          max_batch: int, ann: str | None) -> None:
    """Serve the model in MODEL_DIR over HTTP (needs: pip install 'latentrec[serve]').

    \b
    Endpoints: GET /health, GET /v1/model, GET /v1/users/{user}/recommendations,
    POST /v1/recommendations, GET /v1/items/{item}/similar, POST /v1/predict,
    POST /v1/fold-in, GET /metrics, POST /admin/reload (when LATENTREC_ADMIN_TOKEN is set).
    OpenAPI docs at /docs.
    """

    def action() -> None:
        import importlib.util
        import os

        from latentrec.errors import LatentrecError
        from latentrec.models import load

        if importlib.util.find_spec("uvicorn") is None or importlib.util.find_spec(
                "fastapi") is None:
            raise LatentrecError("serving needs FastAPI and uvicorn: "
                                 "pip install 'latentrec[serve]'")
        import tempfile

        import uvicorn

        load(model_dir)  # a bad model directory fails here, with one line, before binding
        os.environ["LATENTREC_MODEL_DIR"] = str(Path(model_dir).resolve())
        # workers share this file to follow each other's /admin/reload
        state = Path(tempfile.mkdtemp(prefix="latentrec-serve-"))
        os.environ["LATENTREC_SYNC_FILE"] = str(state / "current-model.json")
        os.environ["LATENTREC_MAX_K"] = str(max_k)
        os.environ["LATENTREC_MAX_BATCH"] = str(max_batch)
        os.environ["LATENTREC_WORKERS"] = str(workers)
        if ann is not None:
            if importlib.util.find_spec("faiss") is None:
                raise LatentrecError("--ann needs faiss: pip install 'latentrec[ann]'")
            os.environ["LATENTREC_ANN"] = ann
        uvicorn.run("latentrec.serving.app:app_from_environment", factory=True, host=host,
                    port=port, workers=workers, log_level="warning", access_log=False)

    _run(action)


@cli.command()
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
    Peers (pip install 'latentrec[bench]'): Surprise, cornac, LIBMF for ratings;
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
            _emit_json(json.loads(written.json.read_text()))
        else:
            click.echo(markdown_table(result))
        if written.plot_skipped is not None:
            click.echo(f"skipping the plot: {written.plot_skipped}", err=True)
        files = [str(path) for path in (written.json, written.plot) if path is not None]
        click.echo(f"wrote {' and '.join(files)}", err=True)
        if result.failed:
            _fail(f"{len(result.failed)} contender(s) failed: "
                  + "; ".join(f"{entry.name}: {entry.reason}" for entry in result.failed))

    _run(action)


def main() -> None:
    cli(prog_name="latentrec")


if __name__ == "__main__":
    main()
