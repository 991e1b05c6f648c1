"""``latentrec train`` and ``latentrec models``."""

from __future__ import annotations

import contextlib
import json
import time
import warnings
from pathlib import Path
from typing import Any

import click

from latentrec.cli._common import (
    check_feature_sides,
    data_options,
    debug_option,
    emit_json,
    feature_options,
    json_value,
    read_data,
    read_feature_file,
    run,
)


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


@click.command()
@debug_option
@click.argument("data", type=click.Path())
@click.option("-o", "--output", "model_dir", required=True, type=click.Path(),
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
@click.option("--patience", type=click.IntRange(min=1), default=None,
              help="With --valid-fraction: epochs without improvement before stopping "
                   "[default: 3].")
@click.option("--refit/--no-refit", default=True, show_default=True,
              help="With --valid-fraction: refit on all of DATA (or save the model trained on "
                   "the rest).")
@click.option("--checkpoint-dir", type=click.Path(), default=None,
              help="Save the training state here (resumable with --resume).")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=1, show_default=True,
              help="Epochs between checkpoints.")
@click.option("--resume", "resume_dir", type=click.Path(), default=None,
              help="Continue the run saved in this checkpoint directory.")
@click.option("--nproc", type=click.IntRange(min=1), default=None,
              help="Train in this many processes on this machine (torch's elastic launcher; "
                   "under torchrun, leave it out).")
@click.option("--max-restarts", type=click.IntRange(min=0), default=0, show_default=True,
              help="With --nproc: restart the processes this many times when one fails "
                   "(they resume from --checkpoint-dir).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=600.0,
              show_default=True,
              help="Distributed training: seconds a process waits for the others in any "
                   "exchange before the run fails.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@feature_options
@data_options
def train(data: str, model_dir: str, kind: str, factors: int | None, epochs: int | None,
          lr: float | None, reg: float | None, seed: int | None, device: str | None,
          extra: tuple[str, ...], valid_fraction: float | None, patience: int | None,
          refit: bool,
          checkpoint_dir: str | None, checkpoint_every: int, resume_dir: str | None,
          nproc: int | None, max_restarts: int, timeout: float,
          quiet: bool, as_json: bool, user_features: str | None, item_features: str | None,
          user_features_id: str | None, item_features_id: str | None,
          user_features_kind: tuple[str, ...], item_features_kind: tuple[str, ...], fmt: str,
          sep: str | None, implicit: bool, duplicates: str) -> None:
    """Train a model on DATA (CSV/TSV/Parquet/MovieLens, or a directory of such files) and
    save it to MODEL_DIR.

    \b
    Models: biased-mf (default), bayesian-mf, mf, als for ratings; ials, bpr, popular,
    item-knn, ease for implicit feedback (add --implicit when DATA holds counts or no
    values); `latentrec models` lists every installed kind with its parameters.

    \b
    Side features (models that learn from them; docs/features.md): ids in a feature file
    without interactions join the model, scored by their features (cold start):
      latentrec train plays.csv -o model/ --model ials --implicit --item-features items.csv

    \b
    Distributed (als, ials, biased-mf, bpr; docs/distributed.md):
      latentrec train shards/ -o model/ --model ials --implicit --nproc 4
      torchrun --nproc-per-node 4 -m latentrec train shards/ -o model/ --model ials --implicit
    """
    given: dict[str, Any] = {name: value for name, value in (
        ("factors", factors), ("epochs", epochs), ("lr", lr), ("reg", reg),
        ("seed", seed), ("device", device)) if value is not None}
    extra_params = _parse_params(extra)

    def action() -> None:
        from latentrec.data import random_split
        from latentrec.errors import InvalidParameterError
        from latentrec.models import model_kinds
        from latentrec.persistence import check_writable
        from latentrec.training import Checkpoint, Trainer
        from latentrec.training.distributed import launched

        if not model_dir.strip():
            raise InvalidParameterError("-o/--output: the directory name is empty")
        check_writable(model_dir)  # before reading and training, not after
        if checkpoint_dir is not None:
            _check_checkpoint_dir(checkpoint_dir)
        if resume_dir is not None and not Path(resume_dir, "LATEST").is_file():
            raise InvalidParameterError(f"--resume: {resume_dir} is not a checkpoint directory "
                                        f"(no LATEST file)")
        if patience is not None and valid_fraction is None:
            raise InvalidParameterError("--patience needs --valid-fraction (early stopping "
                                        "watches the held-out part)")
        if valid_fraction is not None and refit and checkpoint_dir is not None:
            raise InvalidParameterError("--checkpoint-dir with --valid-fraction would save "
                                        "checkpoints of the run on the training part only; add "
                                        "--no-refit, or drop --valid-fraction")
        model_class = model_kinds()[kind]
        files = {"users": user_features, "items": item_features}
        for side, column, kinds in (("users", user_features_id, user_features_kind),
                                    ("items", item_features_id, item_features_kind)):
            for option, given_value in (("id", column), ("kind", kinds)):
                if given_value and files[side] is None:
                    raise InvalidParameterError(f"--{side[:-1]}-features-{option} needs "
                                                f"--{side[:-1]}-features")
        check_feature_sides(model_class, kind, files)
        params = _model_params(model_class, kind, given, extra_params)
        try:  # bad hyperparameters fail before any reading, named as they were given
            model = model_class(**params)
        except (InvalidParameterError, TypeError) as error:
            raise type(error)(_name_option(str(error), given)) from None
        if launched() or (nproc or 1) > 1 or Path(data).is_dir():
            _check_distributed(model_class, kind, data, valid_fraction)
            if user_features is not None or item_features is not None:
                option = "--user-features" if user_features is not None else "--item-features"
                raise InvalidParameterError(f"{option}: distributed training does not take "
                                            f"side features yet; train in one process")
            if not launched() and (nproc or 1) > 1:
                _launch(nproc or 1, max_restarts, data, model_dir, kind, given, extra_params,
                        checkpoint_dir, checkpoint_every, resume_dir, timeout, quiet, as_json,
                        fmt, sep, implicit, duplicates)
                return
            _train_sharded(model, kind, data, model_dir, checkpoint_dir, checkpoint_every,
                           resume_dir, timeout, quiet, as_json, fmt, sep, implicit, duplicates)
            return
        if max_restarts:
            raise InvalidParameterError("--max-restarts needs --nproc (or torchrun's own "
                                        "--max-restarts)")
        # feature files first: they are small, and a bad one fails before the long read
        users_table = (None if user_features is None else read_feature_file(
            user_features, user_features_id, user_features_kind, "--user-features-kind"))
        items_table = (None if item_features is None else read_feature_file(
            item_features, item_features_id, item_features_kind, "--item-features-kind"))
        interactions = read_data(data, fmt, sep, implicit, duplicates)
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
                model.set_params(patience=3 if patience is None else patience)
            interactions, valid = random_split(interactions, valid_fraction,
                                               seed=params.get("seed", 0))
        trainer = Trainer(
            show_progress=not quiet and not as_json,
            checkpoint=None if checkpoint_dir is None else Checkpoint(checkpoint_dir,
                                                                      every=checkpoint_every),
            resume=resume_dir)
        started = time.perf_counter()
        model.fit(interactions, valid=valid, trainer=trainer, user_features=users_table,
                  item_features=items_table)
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
            summary[metric] = json_value(best)
            summary["best_epoch"] = best_epoch
            summary["refit"] = refit
            note = f", best {metric} {best:.4f} at epoch {best_epoch}"
            if refit:
                model = model_class(**{**params, "epochs": epochs_again})
                model.fit(everything, show_progress=not quiet and not as_json,
                          user_features=users_table, item_features=items_table)
                note += (f"; refit on all {len(everything):,} interactions for "
                         f"{epochs_again} epochs")
            else:
                note += (f"; saved the model trained on {len(interactions):,} interactions "
                         f"(--no-refit; {len(valid):,} held out)")
        seconds = time.perf_counter() - started
        model.save(model_dir)
        last = model.history_[-1] if model.history_ else {}
        summary["seconds"] = round(seconds, 3)
        summary["loss"] = json_value(last.get("loss"))
        final = everything if valid is None or refit else interactions
        cold = {side: count for side, count in (("users", model.n_users - final.n_users),
                                                 ("items", model.n_items - final.n_items))
                if files[side] is not None}
        for side, count in cold.items():
            summary[f"cold_{side}"] = count
        cold_text = "".join(f"; {count:,} {side} known only by their features joined the model"
                            for side, count in cold.items() if count)
        if as_json:
            emit_json(summary)
        else:
            click.echo(
                f"trained {kind} on {len(final):,} interactions "
                f"({final.n_users:,} users, {final.n_items:,} items) in "
                f"{seconds:.2f} s{_epochs_text(model)}{note}{cold_text}; saved to {model_dir}"
            )

    run(action)


def _check_distributed(model_class: Any, kind: str, data: str,
                       valid_fraction: float | None) -> None:
    from latentrec.errors import InvalidParameterError
    from latentrec.models import model_kinds

    if not model_class.trains_distributed:
        able = sorted(k for k, cls in model_kinds().items() if cls.trains_distributed)
        why = ("DATA is a directory of shards" if Path(data).is_dir()
               else "this trains in several processes")
        raise InvalidParameterError(f"--model {kind}: {why}, and only {', '.join(able)} "
                                    f"train distributed")
    if valid_fraction is not None:
        raise InvalidParameterError("--valid-fraction is not available in distributed "
                                    "training; evaluate the saved model on held-out data")


def _launch(nproc: int, max_restarts: int, data: str, model_dir: str, kind: str,
            given: dict[str, Any], extra: dict[str, Any], checkpoint_dir: str | None,
            checkpoint_every: int, resume_dir: str | None, timeout: float, quiet: bool,
            as_json: bool, fmt: str, sep: str | None, implicit: bool, duplicates: str) -> None:
    """Start ``nproc`` processes running this same command (without ``--nproc``)."""
    import sys

    from latentrec.cli._common import Context
    from latentrec.errors import DistributedError
    from latentrec.training.distributed import launch

    arguments = ["train", data, "-o", model_dir, "--model", kind, "--format", fmt,
                 "--duplicates", duplicates, "--timeout", repr(timeout)]
    for name, value in given.items():
        arguments += [f"--{name}", str(value)]
    for name, value in extra.items():
        arguments += ["-p", f"{name}={json.dumps(value)}"]
    if checkpoint_dir is not None:
        arguments += ["--checkpoint-dir", checkpoint_dir, "--checkpoint-every",
                      str(checkpoint_every)]
    if resume_dir is not None:
        arguments += ["--resume", resume_dir]
    if sep is not None:
        arguments += ["--sep", sep]
    arguments += [flag for flag, on in (("--implicit", implicit), ("--quiet", quiet),
                                        ("--json", as_json), ("--debug", Context.debug)) if on]
    try:
        launch(nproc, arguments, max_restarts=max_restarts, quiet=not Context.debug)
    except DistributedError as error:
        if error.reported:  # the failing process printed its one line already
            sys.exit(1)
        raise


def _train_sharded(model: Any, kind: str, data: str, model_dir: str,
                   checkpoint_dir: str | None, checkpoint_every: int, resume_dir: str | None,
                   timeout: float, quiet: bool, as_json: bool, fmt: str, sep: str | None,
                   implicit: bool, duplicates: str) -> None:
    """This process's share of a distributed run (or the whole run over a directory)."""
    from latentrec.training import Checkpoint
    from latentrec.training.distributed import init_group, shutdown
    from latentrec.training.sharded import fit_sharded

    group = init_group(timeout=timeout)
    if not group.leader:  # every rank would print the same warnings; rank 0 does
        warnings.simplefilter("ignore")
    started = time.perf_counter()
    fit_sharded(model, data, output=model_dir, feedback="implicit" if implicit else "explicit",
                duplicates=duplicates,  # type: ignore[arg-type]
                read_options={"format": fmt, "sep": sep},
                checkpoint=None if checkpoint_dir is None else Checkpoint(
                    checkpoint_dir, every=checkpoint_every),
                resume=resume_dir, show_progress=not quiet and not as_json, group=group)
    seconds = time.perf_counter() - started
    shutdown()
    if not group.leader:
        return
    last = model.history_[-1] if model.history_ else {}
    summary = {"model": kind, "model_dir": str(Path(model_dir)), "interactions": len(
        model.seen_.data), "users": model.n_users, "items": model.n_items,
        "epochs": len(model.history_), "processes": group.size, "seconds": round(seconds, 3),
        "loss": json_value(last.get("loss")), "bytes_sent_rank0": group.bytes_sent}
    if as_json:
        emit_json(summary)
    else:
        click.echo(f"trained {kind} on {summary['interactions']:,} interactions "
                   f"({model.n_users:,} users, {model.n_items:,} items) in {seconds:.2f} s "
                   f"with {group.size} process{'es' if group.size > 1 else ''}"
                   f"{_epochs_text(model)}; saved to {model_dir}")


def _name_option(message: str, given: dict[str, Any]) -> str:
    """``lr must be > 0`` as ``--lr: lr must be > 0`` (or ``-p NAME: ...``)."""
    name = message.split(" ", 1)[0]
    if name in given:
        return f"--{name}: {message}"
    return f"-p {name}: {message}" if name.isidentifier() else message


def _epochs_text(model: Any) -> str:
    count = len(model.history_)
    if not model.trains_in_epochs:
        return " (closed form)"
    return f", {count} epoch{'s' if count != 1 else ''}"


def _check_checkpoint_dir(path: str) -> None:
    """A checkpoint folder must be creatable and writable; one line naming the option."""
    from latentrec.errors import InvalidParameterError

    target = Path(path)
    if not path.strip():
        raise InvalidParameterError("--checkpoint-dir: the directory name is empty")
    existing = next((p for p in (target, *target.parents) if p.exists()), Path("."))
    if existing == target and not target.is_dir():
        raise InvalidParameterError(f"--checkpoint-dir: {target} exists and is not a directory")
    if not existing.is_dir():
        raise InvalidParameterError(f"--checkpoint-dir: {existing} is a file, so {target} "
                                    f"cannot be created")


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
