"""Training in several processes with ``torch.distributed``: the process group, the collective
operations latentrec uses (each with a timeout, each counting the bytes it sends), the
distributed trainer and the launcher behind ``latentrec train --nproc``.

This is the only module that calls ``torch.distributed``. Processes are started by
``torchrun`` (or ``latentrec train --nproc P``, which runs torch's elastic launcher, or Spark's
``TorchDistributor``); each finds its rank and the rendezvous in the environment variables they
set (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``). gloo carries CPU tensors and
NCCL GPU tensors. Outside such a launch, :func:`init_group` returns a group of one process in
which every collective is the identity, so the distributed code paths also run (and are
measured) at ``P = 1``.

Only rank 0 logs, draws progress, writes checkpoints and writes the model.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import logging
import math
import os
import pickle
import signal
import socket
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from latentrec.errors import DataError, DistributedError, InvalidParameterError, LatentrecError
from latentrec.training.checkpoints import write_checkpoint
from latentrec.training.trainer import Trainer

__all__ = ["DEFAULT_TIMEOUT", "DistributedTrainer", "Group", "init_group", "launch",
           "launched", "rebuilt_error", "shutdown"]

logger = logging.getLogger(__name__)

#: seconds any collective may wait for the other ranks before the run fails (a rank that died
#: or hangs must not hang the others forever)
DEFAULT_TIMEOUT = 600.0


def launched() -> bool:
    """Whether this process was started by a distributed launcher with more than one rank."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


@dataclass
class Group:
    """The processes of one distributed run, and the collectives latentrec needs.

    Every collective must be called by every rank in the same order. ``bytes_sent`` counts
    the payload this rank hands to the network: for all-to-all and point-to-point exactly the
    bytes addressed to other ranks, for all-gather the local tensor once per other rank, and
    for all-reduce the ``2 (P - 1) / P`` share of a ring all-reduce.
    """

    rank: int = 0
    size: int = 1
    timeout: float = DEFAULT_TIMEOUT
    #: the process group that carries latentrec's exchanges: they are CPU tensors, so under
    #: NCCL (GPUs) a gloo group beside it; ``None`` is the default group
    channel: Any = None
    bytes_sent: int = field(default=0, init=False)

    @property
    def leader(self) -> bool:
        """Rank 0: the one that logs, checkpoints and writes the model."""
        return self.rank == 0

    # ---------------------------------------------------------------- tensors
    def all_reduce(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        """Reduce ``tensor`` over all ranks, in place (``op`` is ``sum``, ``min`` or ``max``)."""
        if self.size == 1:
            return tensor
        import torch.distributed as dist

        reduce_op = {"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN,
                     "max": dist.ReduceOp.MAX}[op]
        self.bytes_sent += _nbytes(tensor) * 2 * (self.size - 1) // self.size
        with _contact(self.rank):
            dist.all_reduce(tensor, op=reduce_op, group=self.channel)
        return tensor

    def all_gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's ``tensor`` (their first dimensions may differ), in rank order."""
        if self.size == 1:
            return [tensor]
        lengths = self._lengths(len(tensor))
        longest = max(lengths)
        out = self.all_gather_blocks(tensor, longest)
        return [out[r * longest:r * longest + length] for r, length in enumerate(lengths)]

    def all_to_all(self, chunks: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Send ``chunks[r]`` to rank ``r``; return what each rank sent here, in rank order.

        Chunks share dtype and trailing shape; their first dimensions may differ.
        """
        if len(chunks) != self.size:
            raise ValueError(f"all_to_all needs {self.size} chunks, got {len(chunks)}")
        if self.size == 1:
            return [chunks[0]]
        out, received = self._all_to_all(torch.cat(list(chunks)), [len(c) for c in chunks])
        return list(torch.split(out, received))

    def all_to_all_flat(self, send: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
        """Like :meth:`all_to_all` for a buffer already laid out by destination (``counts[r]``
        rows for rank ``r``, in rank order): what every rank sent here, in rank order, in one
        tensor (no copy beyond it)."""
        if len(counts) != self.size:
            raise ValueError(f"all_to_all_flat needs {self.size} counts, got {len(counts)}")
        if self.size == 1:
            return send
        return self._all_to_all(send, counts)[0]

    def _all_to_all(self, send: torch.Tensor, counts: Sequence[int]
                    ) -> tuple[torch.Tensor, list[int]]:
        """The exchange behind both all-to-alls: the received rows and how many came from each
        rank."""
        import torch.distributed as dist

        sizes = torch.tensor(list(counts), dtype=torch.int64)
        received = torch.empty_like(sizes)
        with _contact(self.rank):
            dist.all_to_all_single(received, sizes, group=self.channel)
        out = torch.empty((int(received.sum()), *send.shape[1:]), dtype=send.dtype)
        row = _nbytes(send) // max(1, len(send))
        self.bytes_sent += row * (int(sizes.sum()) - int(sizes[self.rank]))
        if math.prod(send.shape[1:]):  # the same on every rank: all call it, or none
            with _contact(self.rank):
                dist.all_to_all_single(out, send.contiguous(), received.tolist(),
                                       sizes.tolist(), group=self.channel)
        return out, received.tolist()

    def shift(self, tensor: torch.Tensor) -> torch.Tensor:
        """Send ``tensor`` to rank ``rank - 1`` and return the one rank ``rank + 1`` sent
        (a ring; shapes and dtypes equal on every rank)."""
        if self.size == 1:
            return tensor
        import torch.distributed as dist

        out = torch.empty_like(tensor)
        target, source = (self.rank - 1) % self.size, (self.rank + 1) % self.size
        self.bytes_sent += _nbytes(tensor)
        with _contact(self.rank):
            requests = dist.batch_isend_irecv([
                dist.P2POp(dist.isend, tensor.contiguous(), target, group=self.channel),
                dist.P2POp(dist.irecv, out, source, group=self.channel)])
            for request in requests:
                request.wait()
        return out

    def all_gather_blocks(self, tensor: torch.Tensor, rows: int,
                          out: torch.Tensor | None = None) -> torch.Tensor:
        """Every rank's ``tensor`` (at most ``rows`` rows; the same on every rank) in one
        table of ``size * rows`` rows, rank ``r``'s at ``r * rows``: no copy beyond the
        table itself. ``out``, when given, is that table: reusing one saves the page faults
        of a fresh one (0.1 s per 256 MB here)."""
        tensor = _padded(tensor, rows)
        if self.size == 1:
            return tensor
        import torch.distributed as dist

        shape = (self.size * rows, *tensor.shape[1:])
        if out is None:
            out = torch.empty(shape, dtype=tensor.dtype)
        elif out.shape != shape or out.dtype != tensor.dtype:
            raise ValueError(f"all_gather_blocks: out has shape {tuple(out.shape)}, needs "
                             f"{shape}")
        tensor = tensor.contiguous()
        out[self.rank * rows:(self.rank + 1) * rows] = tensor
        self.bytes_sent += _nbytes(tensor) * (self.size - 1)
        # pairwise sends, not gloo's all-gather: on loopback that moved 260-420 MB/s against
        # 1.4-1.8 GB/s for the same bytes sent pairwise (benchmarks/distributed.py exchange)
        operations = []
        for other in range(self.size):
            if other != self.rank:
                operations += [
                    dist.P2POp(dist.isend, tensor, other, group=self.channel),
                    dist.P2POp(dist.irecv, out[other * rows:(other + 1) * rows], other,
                               group=self.channel)]
        with _contact(self.rank):
            for request in dist.batch_isend_irecv(operations):
                request.wait()
        return out

    def to_leader(self, tensors: Sequence[torch.Tensor]
                  ) -> Iterator[tuple[int, Sequence[torch.Tensor]]]:
        """On rank 0, every rank's 1-D ``tensors`` (same count and dtypes everywhere) one rank
        at a time, rank 0's own first, so that rank 0 never holds more than one other rank's
        share; elsewhere it sends them and yields nothing. Every rank must exhaust it."""
        if self.leader:
            yield 0, tensors
        if self.size == 1:
            return

        with _contact(self.rank):
            if not self.leader:
                self._send_parts(tensors, 0)
                return
            for source in range(1, self.size):
                yield source, self._receive_parts(tensors, source)

    def hand_over(self, tensors: Sequence[torch.Tensor], source: int, target: int
                  ) -> list[torch.Tensor] | None:
        """Rank ``source``'s 1-D ``tensors`` on rank ``target`` (``None`` on every other rank;
        ``tensors`` there only give the dtypes). Called by both ranks; others may call it."""
        if self.rank not in (source, target) or source == target:
            return list(tensors) if self.rank == target else None

        with _contact(self.rank):
            if self.rank == source:
                self._send_parts(tensors, target)
                return None
            return self._receive_parts(tensors, source)

    def _send_parts(self, tensors: Sequence[torch.Tensor], target: int) -> None:
        """Send 1-D ``tensors`` to ``target``: their lengths, then each non-empty one."""
        import torch.distributed as dist

        dist.send(torch.tensor([len(t) for t in tensors], dtype=torch.int64), target,
                  group=self.channel)
        for tensor in tensors:
            self.bytes_sent += _nbytes(tensor)
            if len(tensor):  # both sides know the length
                dist.send(tensor.contiguous(), target, group=self.channel)

    def _receive_parts(self, like: Sequence[torch.Tensor], source: int) -> list[torch.Tensor]:
        """What ``_send_parts`` sent from ``source``; ``like`` gives the count and dtypes."""
        import torch.distributed as dist

        lengths = torch.empty(len(like), dtype=torch.int64)
        dist.recv(lengths, source, group=self.channel)
        received = []
        for tensor, length in zip(like, lengths.tolist(), strict=True):
            part = torch.empty(int(length), dtype=tensor.dtype)
            if length:
                dist.recv(part, source, group=self.channel)
            received.append(part)
        return received

    def _lengths(self, length: int) -> list[int]:
        import torch.distributed as dist

        mine = torch.tensor([length], dtype=torch.int64)
        every = [torch.empty_like(mine) for _ in range(self.size)]
        with _contact(self.rank):
            dist.all_gather(every, mine, group=self.channel)
        return [int(x) for x in every]

    # ---------------------------------------------------------------- Python values
    def all_gather_object(self, value: Any) -> list[Any]:
        """Every rank's ``value`` (plain data: numbers, strings, lists, numpy arrays)."""
        if self.size == 1:
            return [value]
        payload = torch.frombuffer(bytearray(pickle.dumps(value, protocol=5)), dtype=torch.uint8)
        # pickle only carries values between the processes of one run (never files)
        return [pickle.loads(part.numpy().tobytes()) for part in self.all_gather(payload)]

    def broadcast_object(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank."""
        return self.all_gather_object(value if self.leader else None)[0]

    def agree(self, error: BaseException | None) -> None:
        """Raise on every rank when any rank failed: the error of the lowest failing rank, as
        the same exception type where it is a latentrec error (one line), so every process
        exits with that message instead of waiting for a partner that is gone."""
        if self.size == 1:
            if error is not None:
                raise error
            return
        mine = None if error is None else (type(error).__name__, str(error))
        failures = [(rank, f) for rank, f in enumerate(self.all_gather_object(mine))
                    if f is not None]
        if not failures:
            return
        rank, (name, message) = failures[0]
        agreed = error if error is not None and rank == self.rank else rebuilt_error(
            name, message)
        # every rank raises it; a command line prints it once (rank 0)
        agreed.agreed = True  # type: ignore[attr-defined]
        if agreed is error:
            raise error
        raise agreed

    def barrier(self) -> None:
        if self.size > 1:
            import torch.distributed as dist

            with _contact(self.rank):
                dist.barrier(group=self.channel)


@contextlib.contextmanager
def _contact(rank: int) -> Iterator[None]:
    """A failed collective as one line: another process died, or did not answer in time."""
    try:
        yield
    except RuntimeError as error:  # gloo and NCCL raise RuntimeError (DistBackendError)
        text = str(error)
        reason = ("did not answer within the timeout" if "imeout" in text or "timed out" in text
                  else "closed its connection (it crashed or was killed)")
        raise DistributedError(f"rank {rank}: another process of the run {reason}; see that "
                               f"process's own error") from error


def rebuilt_error(name: str, message: str) -> Exception:
    """Another process's error, from its type's name and its one-line message, as the type
    the command line maps to one line (a ``LatentrecError`` for any other type)."""
    kinds: dict[str, type[Exception]] = {
        "DataError": DataError, "InvalidParameterError": InvalidParameterError,
        "FileNotFoundError": FileNotFoundError, "DistributedError": DistributedError}
    return kinds.get(name, LatentrecError)(message)


def _padded(tensor: torch.Tensor, rows: int) -> torch.Tensor:
    """``tensor`` with zero rows added up to ``rows`` (collectives need equal shapes)."""
    if len(tensor) >= rows:
        return tensor
    return torch.cat([tensor, tensor.new_zeros((rows - len(tensor), *tensor.shape[1:]))])


def _nbytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def init_group(*, backend: str = "auto", timeout: float = DEFAULT_TIMEOUT,
               threads: int | None = None) -> Group:
    """Join the process group the launcher described in the environment (a group of one
    process when there is none), with ``timeout`` seconds on every collective.

    ``backend`` is ``gloo`` (CPUs), ``nccl`` (GPUs) or ``auto`` (NCCL when CUDA is available).
    ``threads`` sets torch's and numba's threads per process; by default the machine's cores
    are shared evenly among the processes on this machine.
    """
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise InvalidParameterError(f"timeout must be a number of seconds > 0, got {timeout!r}")
    local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    _set_threads(threads or max(1, len(os.sched_getaffinity(0)) // local))
    if not launched():
        return Group(0, 1, float(timeout))
    import torch.distributed as dist

    if torch.cuda.is_available():  # one GPU per process: "cuda" means this rank's
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
    if not dist.is_initialized():
        if backend == "auto":
            backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend not in ("gloo", "nccl"):
            raise InvalidParameterError(f"backend must be 'gloo', 'nccl' or 'auto', got "
                                        f"{backend!r}")
        wait = datetime.timedelta(seconds=timeout)
        if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
            # torch's elastic agent keeps one store across restarts, so a restarted process
            # would read the dead processes' addresses (torch 2.13): key each attempt apart
            store: Any = dist.TCPStore(  # type: ignore[attr-defined]
                os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]),
                int(os.environ["WORLD_SIZE"]), is_master=False, timeout=wait)
            attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
            store = dist.PrefixStore(  # type: ignore[attr-defined]
                f"latentrec/attempt-{attempt}", store)
            dist.init_process_group(backend, store=store, rank=int(os.environ["RANK"]),
                                    world_size=int(os.environ["WORLD_SIZE"]), timeout=wait)
        else:
            dist.init_process_group(backend, timeout=wait)
    channel = None
    if dist.get_backend() == "nccl":
        channel = dist.new_group(backend="gloo", timeout=datetime.timedelta(seconds=timeout))
    group = Group(dist.get_rank(), dist.get_world_size(), float(timeout), channel)
    # a process that exits with the group open aborts in gloo's threads (SIGABRT)
    atexit.register(shutdown)
    if not group.leader:
        logging.getLogger("latentrec").setLevel(logging.WARNING)
    return group


def _set_threads(threads: int) -> None:
    torch.set_num_threads(threads)
    try:
        import numba

        numba.set_num_threads(min(threads, int(numba.config.NUMBA_NUM_THREADS)))  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - numba is a dependency
        pass


def shutdown(*, wait: bool = False) -> None:
    """Leave the process group at the end of a run. With ``wait``, first wait until every
    rank gets here (so that rank 0 prints the run's error before a launcher stops the
    others); a rank that is gone does not hold the others."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    if wait:
        with contextlib.suppress(RuntimeError):
            dist.barrier()
    dist.destroy_process_group()


@dataclass
class DistributedTrainer(Trainer):
    """A :class:`~latentrec.training.Trainer` for one rank of a distributed run: only rank 0
    draws progress and writes checkpoints (every rank takes part in gathering the state, which
    the trainable's ``state_dict`` does collectively). Resuming reads the checkpoint on every
    rank, so the checkpoint directory must be shared by the ranks (one machine, or a shared
    file system); each rank keeps its own part of the state, so a run may resume with another
    number of processes."""

    group: Group = field(default_factory=Group)

    def __post_init__(self) -> None:
        if not self.group.leader:
            self.show_progress = False

    def _save(self, directory: Any, state: dict[str, Any], keep: int) -> None:
        if self.group.leader:
            write_checkpoint(directory, state, keep=keep)
        self.group.barrier()


def free_port() -> int:
    """A free TCP port on loopback, for a single-machine rendezvous."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def launch(nproc: int, arguments: Sequence[str], *, max_restarts: int = 0,
           quiet: bool = True) -> None:
    """Run ``python -m latentrec ARGUMENTS`` in ``nproc`` processes on this machine through
    torch's elastic launcher (what ``torchrun --standalone`` does), restarting every process
    up to ``max_restarts`` times when one fails.

    Raises :class:`~latentrec.errors.DistributedError` when the run fails for good; its
    ``reported`` is true when the failing process exited after printing its own error line.
    ``quiet`` keeps the launcher's own log lines (restarts, signals sent) off stderr.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise InvalidParameterError(f"nproc must be an integer >= 1, got {nproc!r}")
    if isinstance(max_restarts, bool) or not isinstance(max_restarts, int) or max_restarts < 0:
        raise InvalidParameterError(f"max_restarts must be an integer >= 0, got "
                                    f"{max_restarts!r}")
    if quiet:
        logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    config = LaunchConfig(
        min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=f"latentrec-{os.getpid()}",
        rdzv_backend="c10d", rdzv_endpoint=f"127.0.0.1:{free_port()}",
        max_restarts=max_restarts, monitor_interval=0.2, start_method="spawn")
    try:
        elastic_launch(config, sys.executable)("-m", "latentrec", *arguments)
    except ChildFailedError as error:
        # the root cause is the first failure; the launcher stops the others with SIGTERM
        failures = sorted(error.failures.items(), key=lambda pair: (
            getattr(pair[1], "exitcode", 1) == -signal.SIGTERM,
            getattr(pair[1], "timestamp", 0), pair[0]))
        rank, failure = failures[0] if failures else (0, None)
        code = int(getattr(failure, "exitcode", 1) or 1)
        how = (f"was killed by signal {-code}" if code < 0 else f"exited with status {code}")
        raise DistributedError(f"distributed training failed: rank {rank} {how}",
                               exitcode=code, reported=code == 1) from None
