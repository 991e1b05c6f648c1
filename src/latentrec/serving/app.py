"""The HTTP service: ``create_app(model_dir)`` returns a FastAPI application.

Thin layer over the library: it parses requests, calls the model and formats the CLI's JSON
shapes. Errors are mapped here in one place: unknown ids are 404, bad parameters 422, bodies
over the limit 413. Models are swapped atomically by ``POST /admin/reload``: each request takes
the current model once at its start, so a swap never disturbs a request in flight.
"""


import contextlib
import hmac
import json
import os
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import Body, FastAPI, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from latentrec.errors import (
    DataError,
    InvalidParameterError,
    LatentrecError,
    ModelFileError,
    UnknownIdError,
)
from latentrec.models import FactorModel, Recommender, load
from latentrec.persistence import library_version
from latentrec.serving import schemas

__all__ = ["ServiceLimits", "create_app"]

ADMIN_TOKEN_ENV = "LATENTREC_ADMIN_TOKEN"
MODEL_DIR_ENV = "LATENTREC_MODEL_DIR"
SYNC_FILE_ENV = "LATENTREC_SYNC_FILE"
#: how often workers look for a reload done by another worker
SYNC_SECONDS = 0.5
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass(frozen=True)
class ServiceLimits:
    """Request limits: larger requests are refused with 422 (k, batch) or 413 (body)."""

    max_k: int = 1000
    max_batch: int = 1000
    max_body_bytes: int = 1_000_000


@dataclass
class _Loaded:
    model: Recommender
    model_dir: str | None
    loaded_at: str


@dataclass
class _Metrics:
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: dict[tuple[str, str, int], int] = field(default_factory=lambda: defaultdict(int))
    buckets: dict[str, list[int]] = field(default_factory=dict)
    sums: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    reloads: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self.lock:
            self.requests[(method, route, status)] += 1
            counts = self.buckets.setdefault(route, [0] * (len(_LATENCY_BUCKETS) + 1))
            position = int(np.searchsorted(_LATENCY_BUCKETS, seconds))
            counts[position] += 1
            self.sums[route] += seconds

    def render(self, loaded: _Loaded) -> str:
        lines = [
            "# HELP latentrec_requests_total HTTP requests by method, route and status.",
            "# TYPE latentrec_requests_total counter",
        ]
        with self.lock:
            for (method, route, status), count in sorted(self.requests.items()):
                lines.append(f'latentrec_requests_total{{method="{method}",route="{route}",'
                             f'status="{status}"}} {count}')
            lines += ["# HELP latentrec_request_seconds Request latency by route.",
                      "# TYPE latentrec_request_seconds histogram"]
            for route, counts in sorted(self.buckets.items()):
                total = 0
                for bound, count in zip((*_LATENCY_BUCKETS, float("inf")), counts, strict=True):
                    total += count
                    label = "+Inf" if bound == float("inf") else repr(bound)
                    lines.append(f'latentrec_request_seconds_bucket{{route="{route}",'
                                 f'le="{label}"}} {total}')
                lines.append(f'latentrec_request_seconds_sum{{route="{route}"}} '
                             f'{self.sums[route]:.6f}')
                lines.append(f'latentrec_request_seconds_count{{route="{route}"}} {total}')
            lines += ["# HELP latentrec_reloads_total Model reloads by outcome.",
                      "# TYPE latentrec_reloads_total counter"]
            for outcome, count in sorted(self.reloads.items()):
                lines.append(f'latentrec_reloads_total{{outcome="{outcome}"}} {count}')
        model = loaded.model
        lines += ["# HELP latentrec_model_info The model being served.",
                  "# TYPE latentrec_model_info gauge",
                  f'latentrec_model_info{{kind="{model.kind}",users="{model.n_users}",'
                  f'items="{model.n_items}"}} 1']
        return "\n".join(lines) + "\n"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status)


def create_app(model_dir: str | os.PathLike[str] | None = None, *,
               model: Recommender | None = None,
               limits: ServiceLimits | None = None,
               sync_file: str | os.PathLike[str] | None = None,
               ann: str | None = None) -> FastAPI:
    """A FastAPI application serving the model in ``model_dir`` (or an in-memory ``model``).

    ``POST /admin/reload`` is enabled only when the environment variable
    ``LATENTREC_ADMIN_TOKEN`` is set; callers send it as ``Authorization: Bearer <token>``.
    ``sync_file`` is shared by the worker processes of one service: a reload writes the new
    model directory there and every other worker picks it up within ``SYNC_SECONDS``.
    ``ann="ivf"`` or ``"hnsw"`` answers recommendations from an approximate faiss index
    (:class:`~latentrec.models.ann.ItemIndex`), built at start and at every reload.

    Examples
    --------
    >>> from fastapi.testclient import TestClient
    >>> from latentrec import BiasedMF
    >>> from latentrec.datasets import synthetic
    >>> model = BiasedMF(factors=4, epochs=2).fit(synthetic(50, 40), show_progress=False)
    >>> client = TestClient(create_app(model=model))
    >>> client.get("/v1/users/0/recommendations", params={"k": 2}).json()["user"]
    0
    """
    if (model_dir is None) == (model is None):
        raise InvalidParameterError("give exactly one of model_dir and model")
    limits = limits or ServiceLimits()
    def prepared(served: Recommender) -> Recommender:
        if ann is not None:
            if not isinstance(served, FactorModel):
                raise InvalidParameterError(f"an approximate index needs a factor model, not "
                                            f"{type(served).__name__}")
            from latentrec.models.ann import ItemIndex

            served.use_index(ItemIndex(served, method=ann))
        return served

    if model is None:
        assert model_dir is not None
        model = load(model_dir)
    model = prepared(model)
    current = _Loaded(model, None if model_dir is None else str(model_dir), _now())
    metrics = _Metrics()
    swap_lock = threading.Lock()
    admin_token = os.environ.get(ADMIN_TOKEN_ENV) or None
    sync = None if sync_file is None else Path(sync_file)
    seen_version = [_read_sync(sync)[1] if sync is not None else ""]

    def swap_to(directory: str) -> None:
        nonlocal current
        fresh = prepared(load(directory))  # raises before anything changes
        current = _Loaded(fresh, str(Path(directory)), _now())

    def follow_other_workers(stop: threading.Event) -> None:
        assert sync is not None
        while not stop.wait(SYNC_SECONDS):
            directory, version = _read_sync(sync)
            if directory is None or version == seen_version[0]:
                continue
            with swap_lock:
                seen_version[0] = version
                try:
                    swap_to(directory)
                    metrics.reloads["followed"] += 1
                except (LatentrecError, OSError):
                    metrics.reloads["refused"] += 1

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        follower = None
        if sync is not None:
            follower = threading.Thread(target=follow_other_workers, args=(stop,),
                                        name="latentrec-reload-follower", daemon=True)
            follower.start()
        yield
        stop.set()
        if follower is not None:
            follower.join(timeout=5)

    app = FastAPI(
        lifespan=lifespan,
        title="latentrec",
        summary="Recommendations, predictions and similar items from a latentrec model.",
        description="All ids are the raw ids the model was trained with. Unknown ids are 404.",
        version=library_version(),
    )
    errors: dict[int | str, dict[str, Any]] = {
        404: {"model": schemas.ErrorBody, "description": "Unknown user or item."},
        413: {"model": schemas.ErrorBody, "description": "Request body too large."},
        422: {"model": schemas.ErrorBody, "description": "Invalid parameters or body."},
    }

    app.add_middleware(_LimitAndMeasure, limits=limits, metrics=metrics)

    @app.exception_handler(UnknownIdError)
    async def unknown_id(request: Request, error: UnknownIdError) -> JSONResponse:
        return _error(404, str(error))

    @app.exception_handler(InvalidParameterError)
    async def invalid_parameter(request: Request, error: InvalidParameterError) -> JSONResponse:
        return _error(422, str(error))

    @app.exception_handler(DataError)
    async def data_error(request: Request, error: DataError) -> JSONResponse:
        return _error(422, str(error))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        # a body that is not JSON at all is a bad parameter like any other: 422, not 400
        status = 422 if error.status_code == 400 else error.status_code
        message = f"body: {error.detail}" if status == 422 else str(error.detail)
        return JSONResponse({"detail": message}, status_code=status,
                            headers=getattr(error, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = error.errors()
        first = problems[0] if problems else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return _error(422, f"{where}: {first.get('msg', 'invalid request')}".strip(": "))

    # the limits go into the request schemas, so the OpenAPI document states them
    max_k, max_batch = limits.max_k, limits.max_batch

    class RecommendationRequest(schemas.RecommendationRequest):
        users: list[schemas.RawId] = Field(min_length=1, max_length=max_batch,
                                           description="Raw user ids.")
        k: schemas.Count = Field(10, ge=1, le=max_k, description="Items per user.")

    class PredictRequest(schemas.PredictRequest):
        pairs: list[schemas.Pair] = Field(min_length=1, max_length=max_batch)

    class FoldInRequest(schemas.FoldInRequest):
        interactions: list[schemas.Interaction] = Field(min_length=1, max_length=max_batch)
        k: schemas.Count = Field(10, ge=1, le=max_k)

    @app.get("/health", response_model=schemas.Health, tags=["service"], responses=errors)
    async def health() -> Any:
        loaded = current
        return {"status": "ok", "model": loaded.model.kind, "items": loaded.model.n_items}

    @app.get("/v1/model", response_model=schemas.ModelInfo, tags=["service"], responses=errors)
    async def model_info() -> Any:
        return _describe(current)

    @app.get("/v1/users/{user}/recommendations", response_model=schemas.Recommendation,
             responses=errors, tags=["recommend"])
    async def user_recommendations(
        user: Annotated[str, PathParam(description="Raw user id.")],
        k: Annotated[int, Query(ge=1, le=max_k, description="Number of items.")] = 10,
        exclude_seen: bool = True,
    ) -> Any:
        served = current.model
        return JSONResponse(served.recommend_lists(user, k, exclude_seen=exclude_seen)[0])

    @app.post("/v1/recommendations", response_model=schemas.RecommendationBatch,
              responses=errors, tags=["recommend"])
    async def batch_recommendations(body: RecommendationRequest) -> Any:
        served = current.model
        records = served.recommend_lists(body.users, body.k, exclude_seen=body.exclude_seen,
                                         items=body.items, exclude=body.exclude)
        return JSONResponse({"recommendations": records})

    @app.get("/v1/items/{item}/similar", response_model=schemas.Similar, responses=errors,
             tags=["recommend"])
    async def similar_items(
        item: Annotated[str, PathParam(description="Raw item id.")],
        k: Annotated[int, Query(ge=1, le=max_k)] = 10,
    ) -> Any:
        served = current.model
        table = served.similar_items(item, k)
        item_id = served.items_.ids_of(served.items_.index_of([item])).tolist()[0]
        return JSONResponse({"item": item_id, "items": [
            {"item": i, "score": s} for i, s in zip(table["similar_item"].tolist(),
                                                    table["score"].tolist(), strict=True)]})

    @app.post("/v1/predict", response_model=schemas.PredictResponse, responses=errors,
              tags=["predict"])
    async def predict(body: PredictRequest) -> Any:
        served = current.model
        users = [pair.user for pair in body.pairs]
        items = [pair.item for pair in body.pairs]
        values = served.predict(users, items, on_unknown="fallback" if body.fallback
                                else "raise")
        user_ids = served.users_.canonical(users)
        item_ids = served.items_.canonical(items)
        return JSONResponse({"predictions": [
            {"user": u, "item": i, "prediction": float(p)}
            for u, i, p in zip(user_ids, item_ids, values.tolist(), strict=True)]})

    @app.post("/v1/fold-in", response_model=schemas.FoldInResponse, responses=errors,
              tags=["recommend"])
    async def fold_in(body: FoldInRequest) -> Any:
        served = current.model
        if not isinstance(served, FactorModel):
            raise InvalidParameterError(f"{type(served).__name__} does not support fold-in")
        ratings = [entry.rating for entry in body.interactions]
        # a rating left out counts as the training mean (explicit) or a weight of 1 (implicit)
        missing = served.rating_mean_ if served.feedback_ == "explicit" else 1.0
        values = [missing if r is None else r for r in ratings]
        table = served.recommend_new_user([entry.item for entry in body.interactions], values,
                                          k=body.k, exclude_seen=body.exclude_seen)
        return JSONResponse({"items": [
            {"item": i, "score": s} for i, s in zip(table["item"].tolist(),
                                                    table["score"].tolist(), strict=True)]})

    @app.get("/metrics", response_class=PlainTextResponse, tags=["service"], responses=errors)
    async def prometheus_metrics() -> Any:
        return PlainTextResponse(metrics.render(current),
                                 media_type="text/plain; version=0.0.4")

    @app.post("/admin/reload", response_model=schemas.ModelInfo,
              responses={**errors, 401: {"model": schemas.ErrorBody},
                         409: {"model": schemas.ErrorBody}}, tags=["service"])
    def reload(body: Annotated[schemas.ReloadRequest, Body()],
               authorization: Annotated[str | None, Header()] = None) -> Any:
        nonlocal current
        if admin_token is None:
            return _error(404, f"reload is off; set {ADMIN_TOKEN_ENV} to enable it")
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), admin_token.encode()):
            return _error(401, "missing or wrong admin token")
        with swap_lock:
            try:
                swap_to(body.model_dir)
            except (ModelFileError, FileNotFoundError, LatentrecError) as error:
                metrics.reloads["refused"] += 1
                return _error(409, f"model not reloaded, still serving the old one: {error}")
            metrics.reloads["done"] += 1
            if sync is not None:
                seen_version[0] = _write_sync(sync, str(Path(body.model_dir).resolve()))
        return _describe(current)

    return app


def _describe(loaded: _Loaded) -> dict[str, Any]:
    """The body of ``GET /v1/model`` (and of a successful reload) for a loaded model."""
    served = loaded.model
    return {"kind": served.kind, "config": served.get_params(), "feedback": served.feedback_,
            "users": served.n_users, "items": served.n_items, "model_dir": loaded.model_dir,
            "library_version": library_version(), "loaded_at": loaded.loaded_at}


class _LimitAndMeasure:
    """ASGI middleware: refuse bodies over the limit (413) and record every request.

    Written against ASGI directly: Starlette's ``BaseHTTPMiddleware`` costs a large share of
    a fast request.
    """

    def __init__(self, app: Any, *, limits: ServiceLimits, metrics: _Metrics) -> None:
        self.app = app
        self.limits = limits
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def remember_status(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        limit = self.limits.max_body_bytes
        length = dict(scope["headers"]).get(b"content-length")
        too_large = length is not None and (not length.isdigit() or int(length) > limit)
        if length is None and scope["method"] in ("POST", "PUT", "PATCH"):
            # A chunked body announces no length: read it here, up to the limit, and replay it.
            messages, too_large = await _read_body(receive, limit)
            receive = _replay(messages, receive)
        if too_large:
            response = _error(413, f"request body over {limit} bytes")
            await response(scope, receive, remember_status)
        else:
            await self.app(scope, receive, remember_status)
        route = scope.get("route")
        self.metrics.observe(scope["method"], getattr(route, "path", "unmatched"), status[0],
                             time.perf_counter() - started)


async def _read_body(receive: Any, limit: int) -> tuple[list[Any], bool]:
    """The request's body messages, stopping early (``True``) once they exceed ``limit``."""
    messages, size = [], 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, False
        size += len(message.get("body", b""))
        if size > limit:
            return messages, True
        if not message.get("more_body", False):
            return messages, False


def _replay(messages: list[Any], receive: Any) -> Any:
    """An ASGI ``receive`` that yields ``messages`` first, then reads on from ``receive``."""
    pending = list(messages)

    async def replayed() -> Any:
        return pending.pop(0) if pending else await receive()

    return replayed


def _read_sync(path: Path | None) -> tuple[str | None, str]:
    """The model directory and version last written to the sync file (``None`` if absent)."""
    if path is None:
        return None, ""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        return str(document["model_dir"]), str(document["version"])
    except (OSError, ValueError, KeyError, TypeError):
        return None, ""


def _write_sync(path: Path, model_dir: str) -> str:
    version = f"{time.time_ns()}-{os.getpid()}"
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps({"model_dir": model_dir, "version": version}),
                         encoding="utf-8")
    os.replace(temporary, path)  # atomic: other workers never read half a file
    return version


def app_from_environment() -> FastAPI:
    """Application factory for ``uvicorn --factory`` (used by ``latentrec serve``)."""
    model_dir = os.environ.get(MODEL_DIR_ENV)
    if not model_dir:
        raise ModelFileError(f"set {MODEL_DIR_ENV} to the model directory to serve")
    import torch

    # one worker per core: torch's own threads would only fight over the same cores
    workers = int(os.environ.get("LATENTREC_WORKERS", "1"))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    limits = ServiceLimits(
        max_k=int(os.environ.get("LATENTREC_MAX_K", ServiceLimits.max_k)),
        max_batch=int(os.environ.get("LATENTREC_MAX_BATCH", ServiceLimits.max_batch)),
    )
    return create_app(model_dir, limits=limits, sync_file=os.environ.get(SYNC_FILE_ENV) or None,
                      ann=os.environ.get("LATENTREC_ANN") or None)
