"""``latentrec serve``: the HTTP service."""

from __future__ import annotations

from pathlib import Path

import click

from latentrec.cli._common import run


@click.command()
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

    run(action)
