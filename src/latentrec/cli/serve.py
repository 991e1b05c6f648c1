"""``latentrec serve``: the HTTP service."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import click

from latentrec.cli._common import debug_option, run


@click.command()
@debug_option
@click.argument("model_dir", type=click.Path())
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes (each holds the model in memory).")
@click.option("--max-k", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Largest k a request may ask for.")
@click.option("--max-batch", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Most users or pairs in one request.")
@click.option("--max-results", type=click.IntRange(min=1), default=100_000, show_default=True,
              help="Most results in one answer (users × k).")
@click.option("--reload-timeout", type=click.FloatRange(min=0, min_open=True), default=60.0,
              show_default=True,
              help="Seconds a reload waits for every worker to load the new model.")
@click.option("--access-log", is_flag=True, help="Log every request on stdout.")
@click.option("--ann", type=click.Choice(["ivf", "hnsw"]), default=None,
              help="Approximate top-k with a faiss index (pip install 'latentrec[ann]').")
def serve(model_dir: str, host: str, port: int, workers: int, max_k: int, max_batch: int,
          max_results: int, reload_timeout: float, access_log: bool, ann: str | None) -> None:
    """Serve the model in MODEL_DIR over HTTP (needs: pip install 'latentrec[serve]').

    \b
    Endpoints: GET /health, GET /v1/model, GET /v1/users/{user}/recommendations,
    POST /v1/recommendations (known users, or an anonymous one by interactions and/or
    features), GET /v1/items/{item}/similar, POST /v1/predict, GET /metrics,
    POST /admin/reload and POST /admin/items (when LATENTREC_ADMIN_TOKEN is set).
    OpenAPI docs at /docs.
    """

    def action() -> None:
        import importlib.util
        import os
        import shutil
        import signal

        from latentrec.errors import LatentrecError

        if importlib.util.find_spec("uvicorn") is None or importlib.util.find_spec(
                "fastapi") is None:
            raise LatentrecError("serving needs FastAPI and uvicorn: "
                                 "pip install 'latentrec[serve]'")
        if ann is not None and importlib.util.find_spec("faiss") is None:
            raise LatentrecError("--ann needs faiss: pip install 'latentrec[ann]'")
        import uvicorn

        from latentrec.serving.state import SHORT_SHA, SharedState, read_model

        # a bad model directory fails here, with one line, before binding
        model, sha = read_model(model_dir)
        kind = model.kind
        del model
        directory = str(Path(model_dir).resolve())
        # the workers' shared state: the committed model, each worker's report, the reload
        # lock. Owned by this process and removed when it exits.
        state = _state_folder()
        # uvicorn stops on SIGTERM, then raises it again: exit through `finally`, not by it
        previous = signal.signal(signal.SIGTERM, _exit_quietly)
        try:
            SharedState(state).initialise(directory, sha)
            os.environ["LATENTREC_MODEL_DIR"] = directory
            os.environ["LATENTREC_STATE_DIR"] = str(state)
            os.environ["LATENTREC_MAX_K"] = str(max_k)
            os.environ["LATENTREC_MAX_BATCH"] = str(max_batch)
            os.environ["LATENTREC_MAX_RESULTS"] = str(max_results)
            os.environ["LATENTREC_RELOAD_TIMEOUT"] = repr(reload_timeout)
            os.environ["LATENTREC_WORKERS"] = str(workers)
            if ann is not None:
                os.environ["LATENTREC_ANN"] = ann
            shown_host = f"[{host}]" if ":" in host else host
            click.echo(f"latentrec: serving {kind} model {sha[:SHORT_SHA]} (version 1) from "
                       f"{directory} on http://{shown_host}:{port} with {workers} "
                       f"worker{'s' if workers > 1 else ''}; API docs at /docs")
            uvicorn.run("latentrec.serving.app:app_from_environment", factory=True, host=host,
                        port=port, workers=workers, log_config=_log_config(access_log),
                        log_level=None, access_log=access_log)
        finally:
            signal.signal(signal.SIGTERM, previous)
            shutil.rmtree(state, ignore_errors=True)

    run(action)


STATE_PREFIX = "latentrec-serve-"
OWNER_FILE = "owner.pid"


def _state_folder() -> Path:
    """A new state folder in the temporary directory, marked with this process's pid.

    Folders left behind by services killed before they could clean up (their owner is gone)
    are removed on the way.
    """
    import os
    import shutil
    import sys
    import tempfile

    state = Path(tempfile.mkdtemp(prefix=STATE_PREFIX))
    (state / OWNER_FILE).write_text(str(os.getpid()))
    if sys.platform == "win32":  # os.kill(pid, 0) would send CTRL_C_EVENT there
        return state
    uid = os.getuid()
    for folder in Path(tempfile.gettempdir()).glob(f"{STATE_PREFIX}*"):
        try:
            if folder == state or folder.stat().st_uid != uid:
                continue
            owner = int((folder / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            continue
    return state


def _exit_quietly(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def _log_config(access_log: bool) -> dict[str, Any]:
    """uvicorn's logging, quiet except for warnings and (with ``--access-log``) requests."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["uvicorn"]["level"] = "WARNING"
    config["loggers"]["uvicorn.error"]["level"] = "WARNING"
    config["loggers"]["uvicorn.access"]["level"] = "INFO" if access_log else "WARNING"
    return dict(config)
