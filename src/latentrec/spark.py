"""Train latentrec models on a Spark cluster, from a Spark DataFrame, with the same distributed
training as ``torchrun`` (``pip install "latentrec[spark]"``).

:func:`train` writes the DataFrame's partitions as Parquet part files to a staging folder and
runs :func:`latentrec.training.sharded.fit_sharded` in ``num_processes`` processes through
Spark's ``TorchDistributor``; each process reads only its own part files (its share of the
DataFrame's partitions), and rank 0 writes the ordinary model directory, which is then loaded
and returned. On a cluster, ``staging`` and ``output`` must be folders that the driver and
every executor see under the same path (a shared or mounted file system).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from latentrec.data.interactions import DuplicatePolicy, Feedback
from latentrec.errors import DataError, DistributedError, InvalidParameterError
from latentrec.models.base import Recommender
from latentrec.persistence import load
from latentrec.training.distributed import DEFAULT_TIMEOUT, rebuilt_error

__all__ = ["train"]

_ERRORS = "_errors"


def train(df: Any, model: Recommender, *, num_processes: int = 2,
          output: str | os.PathLike[str] | None = None, user_col: str = "user",
          item_col: str = "item", value_col: str | None = "rating",
          feedback: Feedback = "explicit", duplicates: DuplicatePolicy = "error",
          local_mode: bool = True, use_gpu: bool = False,
          staging: str | os.PathLike[str] | None = None,
          timeout: float = DEFAULT_TIMEOUT) -> Recommender:
    """Fit ``model`` on the rows of the Spark DataFrame ``df`` in ``num_processes`` processes.

    Parameters
    ----------
    df
        A ``pyspark.sql.DataFrame`` with a user column, an item column and (unless
        ``value_col`` is ``None``) a rating or weight column.
    model
        An unfitted model of a kind that trains distributed (``als``, ``ials``, ``biased-mf``,
        ``bpr``); its hyperparameters are used, and a fitted copy is returned.
    num_processes, local_mode, use_gpu
        Passed to ``TorchDistributor``: in local mode the processes run on the driver; else
        one per Spark task slot.
    output
        Where rank 0 writes the model directory (a temporary folder by default, removed once
        the model is loaded).
    staging
        Where the DataFrame is written as Parquet for the processes to read (a temporary
        folder by default, removed at the end).

    Errors in the data (a bad value, a repeated pair) raise
    :class:`~latentrec.errors.DataError` on the driver with the process's one-line message.

    Examples
    --------
    >>> from pyspark.sql import SparkSession                            # doctest: +SKIP
    >>> spark = SparkSession.builder.master("local[2]").getOrCreate()  # doctest: +SKIP
    >>> plays = spark.read.parquet("plays/")                            # doctest: +SKIP
    >>> model = train(plays, ImplicitALS(), num_processes=2, value_col="plays",
    ...               feedback="implicit")                              # doctest: +SKIP
    """
    try:
        from pyspark.ml.torch.distributor import TorchDistributor
    except ImportError:
        raise InvalidParameterError("latentrec.spark needs pyspark: pip install "
                                    "'latentrec[spark]'") from None
    if not isinstance(model, Recommender):
        raise TypeError(f"model must be a latentrec model, got {type(model).__name__}")
    if not model.trains_distributed:
        raise InvalidParameterError(f"{type(model).__name__} does not train distributed")
    if isinstance(num_processes, bool) or not isinstance(num_processes, int) or (
            num_processes < 1):
        raise InvalidParameterError(f"num_processes must be an integer >= 1, got "
                                    f"{num_processes!r}")
    missing = [c for c in (user_col, item_col, value_col) if c is not None
               and c not in df.columns]
    if missing:
        raise DataError(f"the DataFrame has no column {missing[0]!r}; its columns: "
                        f"{', '.join(df.columns)}")
    own_staging = staging is None
    folder = Path(tempfile.mkdtemp(prefix="latentrec-spark-")) if staging is None else Path(
        staging)
    own_output = output is None
    target = folder / "model" if output is None else Path(output)
    try:
        # the columns keep their names, so that errors name them as the caller knows them
        columns = [c for c in (user_col, item_col, value_col) if c is not None]
        df.select(*columns).write.mode("overwrite").parquet(str(folder / "data"))
        read_options = {"user_col": user_col, "item_col": item_col, "value_col": value_col}
        try:
            TorchDistributor(num_processes=num_processes, local_mode=local_mode,
                             use_gpu=use_gpu).run(
                _run_rank, model.kind, model.get_params(), str(folder / "data"), str(target),
                feedback, duplicates, read_options, timeout, str(folder / _ERRORS))
        except RuntimeError as error:
            raise _rank_error(folder) or DistributedError(
                f"Spark TorchDistributor failed: {str(error).splitlines()[0]}") from None
        failure = _rank_error(folder)
        if failure is not None:
            raise failure
        fitted: Recommender = load(target)
        return fitted
    finally:
        if own_staging:
            shutil.rmtree(folder, ignore_errors=True)
        elif own_output:
            shutil.rmtree(target, ignore_errors=True)


def _run_rank(kind: str, params: dict[str, Any], data: str, output: str, feedback: str,
              duplicates: str, read_options: dict[str, Any], timeout: float,
              errors: str) -> None:
    """One process of the run (pickled to Spark's workers by TorchDistributor)."""
    from latentrec.persistence import model_kinds
    from latentrec.training.distributed import init_group, shutdown
    from latentrec.training.sharded import fit_sharded

    rank = os.environ.get("RANK", "0")
    try:
        group = init_group(timeout=timeout)
        model = model_kinds()[kind](**params)
        fit_sharded(model, data, output=output, feedback=feedback,  # type: ignore[arg-type]
                    duplicates=duplicates, read_options=read_options,  # type: ignore[arg-type]
                    show_progress=False, group=group)
    except Exception as error:
        # TorchDistributor reports only that a process failed: leave the line for the driver
        Path(errors).mkdir(parents=True, exist_ok=True)
        Path(errors, f"rank-{rank}.txt").write_text(
            f"{type(error).__name__}\n{str(error).splitlines()[0] if str(error) else ''}")
        shutdown(wait=True)
        raise SystemExit(1) from None
    shutdown()


def _rank_error(folder: Path) -> Exception | None:
    """The error the lowest failing rank left, as the exception it was; the staging folder's
    files are named as the DataFrame's part files."""
    reports = sorted((folder / _ERRORS).glob("rank-*.txt"),
                     key=lambda p: int(p.stem.split("-")[1]))
    if not reports:
        return None
    name, _, message = reports[0].read_text().partition("\n")
    message = message.replace(f"{folder / 'data'}{os.sep}", "DataFrame part ")
    return rebuilt_error(name, message)
