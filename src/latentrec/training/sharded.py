"""Fit a model on sharded input in every process of a distributed run (or in one process).

:func:`fit_sharded` is what ``latentrec train`` runs in each process under ``torchrun`` or
``--nproc``, and what :func:`latentrec.spark.train` runs on Spark. Each rank reads only its own
shards; the ranks agree on vocabularies and exchange interactions (:mod:`.partition`), train
together, and rank 0 writes the ordinary model directory.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from latentrec.data.interactions import DuplicatePolicy, Feedback
from latentrec.data.shards import assign_shards, list_shards, read_shard
from latentrec.training.checkpoints import LATEST, Checkpoint
from latentrec.training.distributed import DEFAULT_TIMEOUT, DistributedTrainer, Group, init_group
from latentrec.training.partition import partition, return_freed_memory
from latentrec.training.trainer import Callback

__all__ = ["fit_sharded"]

logger = logging.getLogger(__name__)

Model = TypeVar("Model")


def restarted() -> bool:
    """Whether torch's elastic agent restarted this process after a failure."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0


def fit_sharded(model: Model, source: str | os.PathLike[str], *,
                output: str | os.PathLike[str] | None = None, feedback: Feedback = "explicit",
                duplicates: DuplicatePolicy = "error",
                read_options: Mapping[str, Any] | None = None,
                checkpoint: Checkpoint | None = None, resume: str | os.PathLike[str] | None = None,
                callbacks: Sequence[Callback] = (), show_progress: bool = True,
                timeout: float = DEFAULT_TIMEOUT, group: Group | None = None) -> Model:
    """Train ``model`` on ``source`` (a file or a directory of CSV/Parquet files) in every
    process of a distributed run; rank 0 saves it to ``output``.

    Every rank calls this with the same arguments. Rank ``r`` reads only its shards (files or
    Parquet row groups); an error on any rank (a bad line, a missing file) is raised on every
    rank with that one message. ``callbacks`` are called on every rank after every epoch. After
    a restart by torch's elastic agent (``torchrun
    --max-restarts``), a run with ``checkpoint`` resumes from its newest checkpoint. The
    fitted model is on rank 0 (the other ranks return it unfitted); with ``output``, rank 0
    writes it before any rank returns.

    Examples
    --------
    In one process (a group of one), on a directory of files:

    >>> import tempfile, pathlib
    >>> from latentrec import ImplicitALS
    >>> from latentrec.datasets import synthetic
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> frame = synthetic(200, 100, feedback="implicit").to_frame()
    >>> frame.iloc[:500].to_csv(folder / "part-0.csv", index=False)
    >>> frame.iloc[500:].to_csv(folder / "part-1.csv", index=False)
    >>> model = fit_sharded(ImplicitALS(factors=4, epochs=2), folder, feedback="implicit",
    ...                     show_progress=False)
    >>> model.n_users
    200
    """
    from latentrec.persistence import check_writable

    group = group or init_group(timeout=timeout)
    options = dict(read_options or {})
    error: BaseException | None = None
    parts, names, orders = [], [], []
    try:
        if output is not None and group.leader:
            check_writable(output)
        if resume is not None and not Path(resume, LATEST).is_file():
            from latentrec.errors import InvalidParameterError

            raise InvalidParameterError(f"--resume: {resume} is not a checkpoint directory "
                                        f"(no LATEST file)")
        shards = list_shards(source)
        names = [str(shard) for shard in shards]
        mine = assign_shards(shards, group.rank, group.size)
        for shard in mine:
            part = read_shard(shard, feedback=feedback, duplicates=duplicates, **options)
            # held until every shard is read: only what partitioning needs, compactly
            parts.append(dataclasses.replace(
                part, user_index=part.user_index.astype(np.int32),
                item_index=part.item_index.astype(np.int32), timestamps=None,
                values=None if part.values is None else part.values.astype(np.float32)))
            orders.append(shards.index(shard))
            del part
    except Exception as caught:
        error = caught
    group.agree(error)
    return_freed_memory()
    logger.info("rank %d read %d of %d shards (%d interactions)", group.rank, len(parts),
                len(names), sum(len(p) for p in parts))
    data = partition(group, parts, names, feedback=feedback, duplicates=duplicates,
                     orders=orders)
    del parts
    return_freed_memory()
    data.single_use = True  # nothing else holds it: the fit may free its rows as it gathers
    if (resume is None and checkpoint is not None and restarted()
            and Path(checkpoint.directory, LATEST).is_file()):
        resume = checkpoint.directory
        logger.info("restarted: resuming from %s", resume)
    trainer = DistributedTrainer(callbacks=callbacks, show_progress=show_progress,
                                 checkpoint=checkpoint, resume=resume, group=group)
    model.fit(data, trainer=trainer)  # type: ignore[attr-defined]
    if output is not None and group.leader:
        model.save(output)  # type: ignore[attr-defined]
    group.barrier()
    return model
