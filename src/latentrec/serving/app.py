"""The HTTP service: ``create_app(model_dir)`` returns a FastAPI application.

Thin layer over the library: it parses requests, calls the model and formats the CLI's JSON
shapes. Errors are mapped here in one place: unknown ids are 404, bad parameters 422 (the
field named first), bodies over the limit 413, a reload that cannot happen 409, a worker
without a model 503. No answer is ever a 500 because of a model's values: models whose
numbers are not all finite are refused when they are loaded, and an answer that is still not
finite (an overflow) is refused with 422 instead of being sent.

Models are swapped atomically by ``POST /admin/reload``: each request takes the current model
once at its start, so a swap never disturbs a request in flight. With several workers, every
worker serves the same model: see :mod:`latentrec.serving.state`. ``POST /admin/items`` adds
items known by their features to a copy of the served model, saved as a new model directory,
and reloads it the same way.

``POST /v1/recommendations`` answers known users by their ids, or one user the model does not
know (anonymous), described by their interactions, their features (models trained with user
features), or both. ``POST /v1/fold-in`` is that endpoint's first spelling for anonymous users,
kept (deprecated) for the clients written against it.
"""


import contextlib
import hmac
import logging
import math
import os
import re
import threading
import time
import warnings
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np
import pandas as pd
from fastapi import Body, FastAPI, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from latentrec.data import read_features
from latentrec.data.ids import canonical_int
from latentrec.errors import (
    DataError,
    DataWarning,
    InvalidParameterError,
    LatentrecError,
    ModelFileError,
    UnknownIdError,
)
from latentrec.models import FactorModel, Recommender
from latentrec.models.base import SIDES, Side
from latentrec.persistence import FLOAT32_MAX, library_version
from latentrec.serving import schemas
from latentrec.serving.state import (
    RELOAD_TIMEOUT,
    Loaded,
    ModelService,
    ModelUnavailableError,
    ReloadError,
)

__all__ = ["ServiceLimits", "create_app"]

ADMIN_TOKEN_ENV = "LATENTREC_ADMIN_TOKEN"
MODEL_DIR_ENV = "LATENTREC_MODEL_DIR"
STATE_DIR_ENV = "LATENTREC_STATE_DIR"
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_LIBRARY_VALUE = re.compile(r"^values\[(\d+)\]")
# the server's log: uvicorn configures this logger in every worker
_log = logging.getLogger("uvicorn.error")


@dataclass(frozen=True)
class ServiceLimits:
    """Request limits: larger requests are refused with 422 (k, batch, results) or 413 (body).

    ``max_results`` bounds the size of an answer: users × k of one request.
    """

    max_k: int = 1000
    max_batch: int = 1000
    max_body_bytes: int = 1_000_000
    max_results: int = 100_000


@dataclass
class _Metrics:
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: dict[tuple[str, str, int], int] = field(default_factory=lambda: defaultdict(int))
    buckets: dict[str, list[int]] = field(default_factory=dict)
    sums: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self.lock:
            self.requests[(method, route, status)] += 1
            counts = self.buckets.setdefault(route, [0] * (len(_LATENCY_BUCKETS) + 1))
            position = int(np.searchsorted(_LATENCY_BUCKETS, seconds))
            counts[position] += 1
            self.sums[route] += seconds

    def render(self, service: ModelService) -> str:
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
        for outcome, count in sorted(service.events.items()):
            lines.append(f'latentrec_reloads_total{{outcome="{outcome}"}} {count}')
        current = service.current
        if current is not None:
            model = current.model
            lines += ["# HELP latentrec_model_info The model being served.",
                      "# TYPE latentrec_model_info gauge",
                      f'latentrec_model_info{{kind="{model.kind}",users="{model.n_users}",'
                      f'items="{model.n_items}",version="{current.version}",'
                      f'sha256="{current.short_sha or ""}"}} 1']
        return "\n".join(lines) + "\n"


class _NonFiniteAnswer(LatentrecError):
    """An answer holds NaN or infinity, which JSON cannot carry."""


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


def _answer(document: Any) -> JSONResponse:
    """``document`` as JSON; an answer with a non-finite number is refused (422), never a 500."""
    try:
        return JSONResponse(document)
    except ValueError:  # "Out of range float values are not JSON compliant"
        raise _NonFiniteAnswer(
            "the model's answer to this request is not a finite number (an overflow); nothing "
            "was returned") from None


def _authorised(header: str | None, token: str) -> bool:
    """Whether ``header`` is ``Bearer <token>`` (the scheme in any case, as RFC 7235 has it)."""
    scheme, _, given = (header or "").strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                              token.encode())


# what an HTTP client can do about an unknown id, by route and side
_FALLBACK_HINTS = {
    ("/v1/users/{user}/recommendations", "users"):
        "add ?fallback=true to get the most popular items instead",
    ("/v1/recommendations", "users"):
        'send "fallback": true to get the most popular items for unknown users',
    ("/v1/predict", "users"): 'send "fallback": true to predict unknown ids with the fallback',
    ("/v1/predict", "items"): 'send "fallback": true to predict unknown ids with the fallback',
}


def _unknown_message(error: UnknownIdError, route: str) -> str:
    """The library's message, with the way out an HTTP client has (not the Python one)."""
    hint = _FALLBACK_HINTS.get((route, error.side))
    return f"{error.what}; {hint})" if hint else f"{error.what})"


def create_app(model_dir: str | os.PathLike[str] | None = None, *,
               model: Recommender | None = None,
               limits: ServiceLimits | None = None,
               state_dir: str | os.PathLike[str] | None = None,
               workers: int = 1,
               reload_timeout: float = RELOAD_TIMEOUT,
               ann: str | None = None) -> FastAPI:
    """A FastAPI application serving the model in ``model_dir`` (or an in-memory ``model``).

    The model is refused (:class:`~latentrec.errors.ModelFileError`) unless it loads and all
    its numbers are finite.

    ``POST /admin/reload`` is enabled only when the environment variable
    ``LATENTREC_ADMIN_TOKEN`` is set; callers send it as ``Authorization: Bearer <token>``.
    ``state_dir`` is a folder shared by the ``workers`` worker processes of one service: they
    serve the model committed there, and a reload succeeds only once every worker has loaded
    the new model (within ``reload_timeout`` seconds); see :mod:`latentrec.serving.state`.
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

    service = ModelService(prepare=prepared, model_dir=model_dir, model=model,
                           state_dir=state_dir, workers=workers, reload_timeout=reload_timeout)
    metrics = _Metrics()
    admin_token = os.environ.get(ADMIN_TOKEN_ENV) or None

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        follower = None
        if service.shared is not None:
            follower = threading.Thread(target=service.run_follower, args=(stop,),
                                        name="latentrec-reload-follower", daemon=True)
            follower.start()
        try:
            yield
        finally:
            stop.set()
            if follower is not None:
                follower.join(timeout=5)
            service.close()

    app = FastAPI(
        lifespan=lifespan,
        title="latentrec",
        summary="Recommendations, predictions and similar items from a latentrec model.",
        description=(
            "All ids are the raw ids the model was trained with. Unknown ids are 404 unless "
            "the endpoint takes `fallback`. An answer holds at most "
            f"{limits.max_results} results (users × k). `/health` and `/v1/model` name the "
            "model served (version and SHA-256 of its model.json) and the worker's pid."),
        version=library_version(),
    )
    errors: dict[int | str, dict[str, Any]] = {
        404: {"model": schemas.ErrorBody, "description": "Unknown user or item."},
        413: {"model": schemas.ErrorBody, "description": "Request body too large."},
        422: {"model": schemas.ErrorBody,
              "description": "Invalid parameters or body, an answer over the size limit, or "
                             "an answer that is not finite."},
        503: {"model": schemas.ErrorBody,
              "description": "This worker could not load the service's model."},
    }

    app.add_middleware(_LimitAndMeasure, limits=limits, metrics=metrics)

    def route_of(request: Request) -> str:
        return str(getattr(request.scope.get("route"), "path", ""))

    @app.exception_handler(UnknownIdError)
    async def unknown_id(request: Request, error: UnknownIdError) -> JSONResponse:
        return _error(404, _unknown_message(error, route_of(request)))

    @app.exception_handler(InvalidParameterError)
    async def invalid_parameter(request: Request, error: InvalidParameterError) -> JSONResponse:
        return _error(422, str(error))

    @app.exception_handler(DataError)
    async def data_error(request: Request, error: DataError) -> JSONResponse:
        return _error(422, str(error))

    @app.exception_handler(_NonFiniteAnswer)
    async def non_finite(request: Request, error: _NonFiniteAnswer) -> JSONResponse:
        return _error(422, str(error))

    @app.exception_handler(_KnownItems)
    async def known_items(request: Request, error: _KnownItems) -> JSONResponse:
        return _error(409, str(error))

    @app.exception_handler(ModelUnavailableError)
    async def unavailable(request: Request, error: ModelUnavailableError) -> JSONResponse:
        return _error(503, str(error))

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
    max_k, max_batch, max_results = limits.max_k, limits.max_batch, limits.max_results

    class RecommendationRequest(schemas.RecommendationRequest):
        users: list[schemas.RawId] | None = Field(
            None, min_length=1, max_length=max_batch,
            description=f"Raw user ids; users × k at most {max_results}.")
        interactions: list[schemas.Interaction] | None = Field(
            None, min_length=1, max_length=max_batch, description="The user's items, each once.")
        k: schemas.Count = Field(10, ge=1, le=max_k, description="Items per user.")

    class PredictRequest(schemas.PredictRequest):
        pairs: list[schemas.Pair] = Field(min_length=1, max_length=max_batch)

    class FoldInRequest(schemas.FoldInRequest):
        interactions: list[schemas.Interaction] | None = Field(
            None, min_length=1, max_length=max_batch, description="The user's items, each once.")
        k: schemas.Count = Field(10, ge=1, le=max_k)

    class AddItemsRequest(schemas.AddItemsRequest):
        items: list[schemas.NewItem] = Field(min_length=1, max_length=max_batch,
                                             description="Each item once.")

    def check_results(users: int, k: int, where: str = "query.k") -> None:
        if users * k > max_results:
            raise InvalidParameterError(
                f"{where}: {users} user{'s' if users > 1 else ''} × k={k} is {users * k} "
                f"results, over the limit of {max_results} per request; ask for fewer users "
                f"or a smaller k")

    def recommend(served: Recommender, users: list[Any], k: int, *, exclude_seen: bool,
                  items: list[Any] | None = None, exclude: list[Any] | None = None,
                  fallback: bool = False, from_path: bool = False) -> list[dict[str, Any]]:
        """Records for ``users``; with ``fallback`` unknown users get the most popular items
        and ``"fallback": true``."""
        records = served.recommend_lists(users, k, exclude_seen=exclude_seen, items=items,
                                         exclude=exclude,
                                         on_unknown="fallback" if fallback else "raise")
        for record in records:
            if record.setdefault("fallback", False) and from_path:
                record["user"] = own_type(served, record["user"])
        return records

    def own_type(served: Recommender, user: str) -> Any:
        """An unknown id from a URL path, typed as the model's ids are: ``"42"`` is ``42`` for
        a model with integer ids, text otherwise."""
        number = canonical_int(user) if served.users_.is_integer else None
        return user if number is None else number

    @app.get("/health", response_model=schemas.Health, tags=["service"], responses=errors)
    async def health() -> Any:
        loaded = service.loaded()
        return _answer({"status": "ok", "model": loaded.model.kind,
                        "items": loaded.model.n_items, "version": loaded.version,
                        "sha256": loaded.short_sha, "pid": service.pid})

    @app.get("/v1/model", response_model=schemas.ModelInfo, tags=["service"], responses=errors)
    async def model_info() -> Any:
        return _answer(_describe(service.loaded(), service))

    @app.get("/v1/users/{user}/recommendations", response_model=schemas.Recommendation,
             responses=errors, tags=["recommend"])
    async def user_recommendations(
        user: Annotated[str, PathParam(description="Raw user id.")],
        k: Annotated[int, Query(ge=1, le=max_k, description="Number of items.")] = 10,
        exclude_seen: bool = True,
        fallback: Annotated[bool, Query(
            description="An unknown user gets the most popular items (marked "
                        "`\"fallback\": true`) instead of a 404.")] = False,
    ) -> Any:
        served = service.loaded().model
        check_results(1, k)
        return _answer(recommend(served, [user], k, exclude_seen=exclude_seen,
                                 fallback=fallback, from_path=True)[0])

    @app.post("/v1/recommendations", response_model=schemas.RecommendationBatch,
              responses=errors, tags=["recommend"])
    async def batch_recommendations(body: RecommendationRequest) -> Any:
        served = service.loaded().model
        if body.users is None:  # an anonymous user
            items, caught = anonymous(served, body.interactions, body.features, body.k,
                                      body.exclude_seen)
            document: dict[str, Any] = {"recommendations": [
                {"user": None, "items": items, "fallback": False}]}
            if caught:
                document["warnings"] = caught
            return _answer(document)
        check_results(len(body.users), body.k, "body.users")
        records = recommend(served, body.users, body.k, exclude_seen=body.exclude_seen,
                            items=body.items, exclude=body.exclude, fallback=body.fallback)
        return _answer({"recommendations": records})

    @app.get("/v1/items/{item}/similar", response_model=schemas.Similar, responses=errors,
             tags=["recommend"])
    async def similar_items(
        item: Annotated[str, PathParam(description="Raw item id.")],
        k: Annotated[int, Query(ge=1, le=max_k)] = 10,
    ) -> Any:
        served = service.loaded().model
        check_results(1, k)
        table = served.similar_items(item, k)
        item_id = served.items_.ids_of(served.items_.index_of([item])).tolist()[0]
        return _answer({"item": item_id, "items": [
            {"item": i, "score": s} for i, s in zip(table["similar_item"].tolist(),
                                                    table["score"].tolist(), strict=True)]})

    @app.post("/v1/predict", response_model=schemas.PredictResponse, responses=errors,
              tags=["predict"])
    async def predict(body: PredictRequest) -> Any:
        served = service.loaded().model
        users = [pair.user for pair in body.pairs]
        items = [pair.item for pair in body.pairs]
        values = served.predict(users, items, on_unknown="fallback" if body.fallback
                                else "raise")
        if body.fallback:
            unknown = ((served.users_.index_of(users, on_unknown="ignore") < 0)
                       | (served.items_.index_of(items, on_unknown="ignore") < 0)).tolist()
        else:
            unknown = [False] * len(users)
        user_ids = served.users_.canonical(users)
        item_ids = served.items_.canonical(items)
        return _answer({"predictions": [
            {"user": u, "item": i, "prediction": float(p), "fallback": f}
            for u, i, p, f in zip(user_ids, item_ids, values.tolist(), unknown, strict=True)]})

    @app.post("/v1/fold-in", response_model=schemas.FoldInResponse, responses=errors,
              tags=["recommend"], deprecated=True)
    async def fold_in(body: FoldInRequest) -> Any:
        """The first spelling of ``POST /v1/recommendations`` with an anonymous user; kept
        so that clients written against it go on working."""
        items, caught = anonymous(service.loaded().model, body.interactions, body.features,
                                  body.k, body.exclude_seen)
        document: dict[str, Any] = {"items": items}
        if caught:
            document["warnings"] = caught
        return _answer(document)

    def anonymous(served: Recommender, interactions: list[schemas.Interaction] | None,
                  features: dict[str, Any] | None, k: int,
                  exclude_seen: bool) -> tuple[list[dict[str, Any]], list[str]]:
        """The top-``k`` ``{"item", "score"}`` records of a user the model does not know, and
        the warnings about their feature values."""
        if not isinstance(served, FactorModel):
            raise InvalidParameterError(f"{type(served).__name__} does not take an anonymous "
                                        f"user (fold-in)")
        interactions = interactions or []
        items = [entry.item for entry in interactions]
        values = _fold_in_values(served, interactions) if interactions else None
        if features is not None:
            _check_features(served, "users", features, "body.features")
        try:
            with _recorded_warnings() as caught:
                table = served.recommend_new_user(items, values, k=k, exclude_seen=exclude_seen,
                                                  features=features)
        except InvalidParameterError as error:  # the library's own checks, named for HTTP
            message = _LIBRARY_VALUE.sub(r"body.interactions.\1.rating", str(error), count=1)
            where = "body.interactions" if features is None else "body"
            raise InvalidParameterError(message if message.startswith("body.")
                                        else f"{where}: {error}") from None
        records = [{"item": i, "score": s} for i, s in zip(table["item"].tolist(),
                                                           table["score"].tolist(), strict=True)]
        return records, list(dict.fromkeys(caught))

    @app.get("/metrics", response_class=PlainTextResponse, tags=["service"], responses=errors)
    async def prometheus_metrics() -> Any:
        return PlainTextResponse(metrics.render(service),
                                 media_type="text/plain; version=0.0.4")

    @app.post("/admin/reload", response_model=schemas.ModelInfo,
              responses={**errors, 401: {"model": schemas.ErrorBody},
                         409: {"model": schemas.ErrorBody}}, tags=["service"])
    def reload(body: Annotated[schemas.ReloadRequest, Body()],
               authorization: Annotated[str | None, Header()] = None) -> Any:
        refused = admin_refusal(authorization, "reload")
        if refused is not None:
            return refused
        try:
            fresh = service.reload(body.model_dir)
        except ReloadError as error:
            return _error(error.status, str(error))
        return _answer(_describe(fresh, service))

    @app.post("/admin/items", response_model=schemas.ItemsAdded,
              responses={**errors, 401: {"model": schemas.ErrorBody},
                         409: {"model": schemas.ErrorBody,
                               "description": "An item the model has already, or a reload "
                                              "that did not happen."}},
              tags=["service"])
    def add_items(body: Annotated[AddItemsRequest, Body()],
                  authorization: Annotated[str | None, Header()] = None) -> Any:
        """Add items known by their features to the catalogue: a copy of the served model
        with the items added is saved as a new model directory next to the served one and
        reloaded on every worker (or on none) as `POST /admin/reload` does."""
        refused = admin_refusal(authorization, "adding items")
        if refused is not None:
            return refused
        _, ids = _new_items(service.loaded().model, body.items)  # 4xx before the lock
        caught: list[str] = []

        def change(model: Recommender) -> None:
            # the served model may have changed since the request was checked
            checked, _ = _new_items(model, body.items)
            assert isinstance(model, FactorModel)  # _new_items refuses other models
            with _recorded_warnings() as recorded:
                model.add_items(checked)
            caught.extend(recorded)  # add_items refuses non-finite vectors, adding nothing

        try:
            fresh = service.extend(change, "items")
        except ReloadError as error:
            return _error(error.status, str(error))
        document = _describe(fresh, service)
        document["added"] = fresh.model.items_.canonical(ids)
        if caught:
            document["warnings"] = caught
        return _answer(document)

    def admin_refusal(authorization: str | None, what: str) -> JSONResponse | None:
        if admin_token is None:
            return _error(404, f"{what} is off; set {ADMIN_TOKEN_ENV} to enable it")
        if not _authorised(authorization, admin_token):
            return _error(401, "missing or wrong admin token; send the header "
                               "'Authorization: Bearer <token>'",
                          headers={"WWW-Authenticate": "Bearer"})
        return None

    return app


class _KnownItems(LatentrecError):
    """Items to add that the model has already (409)."""


@contextlib.contextmanager
def _recorded_warnings() -> Any:
    """Warnings while answering, never raised (a process run with ``-W error`` would answer
    500): the library's data warnings (unknown feature values left out) become lines of the
    answer, anything else goes to the server's log."""
    caught: list[str] = []
    with warnings.catch_warnings(record=True) as recorded:
        warnings.simplefilter("always")
        yield caught
    for warning in recorded:
        line = str(warning.message).splitlines()[0] if str(warning.message) else ""
        if issubclass(warning.category, DataWarning):
            caught.append(line)
        else:
            _log.warning("latentrec: %s: %s", warning.category.__name__, line)


def _check_features(served: Recommender, side: Side, features: dict[str, Any],
                    where: str) -> None:
    """Refuse (one line naming the field ``where``) features the served model cannot read:
    the library's checks (:meth:`FactorModel.read_feature_values`), named for HTTP."""
    if not isinstance(served, FactorModel):
        raise InvalidParameterError(f"{where}: this {served.kind} model was trained without "
                                    f"{side[:-1]} features")
    try:
        served.read_feature_values(side, features)
    except InvalidParameterError as error:
        message = str(error)
        raise InvalidParameterError(
            where + message.removeprefix("features") if message.startswith("features")
            else f"{where}: {message}") from None


def _refuse_known(served: Recommender, ids: list[Any]) -> None:
    known = served.items_.index_of(ids, on_unknown="ignore") >= 0
    if known.any():
        position = int(np.flatnonzero(known)[0])
        raise _KnownItems(f"body.items.{position}.item: item {ids[position]!r} is already in "
                          f"the model"
                          + (f" (and {int(known.sum()) - 1} more of the items sent)"
                             if known.sum() > 1 else "") + "; nothing was added")


def _new_items(served: Recommender, entries: list[Any]) -> tuple[Any, list[Any]]:
    """The feature table of the items of a ``POST /admin/items`` body, checked, and their
    ids as the model spells them."""
    if not isinstance(served, FactorModel) or "items" not in served.features_:
        raise InvalidParameterError(f"this {served.kind} model was trained without item "
                                    f"features, so it cannot take new items by their features")
    ids: list[Any] = []
    first_seen: dict[tuple[type, Any], int] = {}
    for position, entry in enumerate(entries):
        where = f"body.items.{position}"
        item = entry.item
        if served.items_.is_integer:
            number = item if isinstance(item, int) else canonical_int(item)
            if number is None:
                raise InvalidParameterError(f"{where}.item: this model's item ids are integers, "
                                            f"got {item!r}")
            item = number
        else:
            item = str(item)
        key = (type(item), item)
        if key in first_seen:
            raise InvalidParameterError(f"{where}.item: item {item!r} is also at "
                                        f"body.items.{first_seen[key]}; send each item once")
        first_seen[key] = position
        _check_features(served, "items", entry.features, f"{where}.features")
        ids.append(item)
    names = list(dict.fromkeys(name for entry in entries for name in entry.features))
    frame = pd.DataFrame({"__item__": pd.Series(ids, dtype=object), **{
        name: pd.Series([entry.features.get(name) for entry in entries], dtype=object)
        for name in names}})
    try:
        table = read_features(frame, "__item__", source="body.items")
    except (DataError, InvalidParameterError) as error:
        raise InvalidParameterError(str(error)) from None
    _refuse_known(served, ids)
    return table, ids


def _fold_in_values(served: FactorModel, interactions: list[Any]) -> list[float]:
    """The values of a fold-in request, checked: each item once, finite ratings within the
    model's rating range (explicit models) or weights >= 0 that fit in float32 (implicit)."""
    explicit = served.feedback_ == "explicit"
    rating_range = served.rating_range_ if explicit else None
    first_seen: dict[tuple[type, Any], int] = {}
    canonical = served.items_.canonical([entry.item for entry in interactions])
    values = []
    for position, (entry, item) in enumerate(zip(interactions, canonical, strict=True)):
        where = f"body.interactions.{position}"
        key = (type(item), item)
        if key in first_seen:
            raise InvalidParameterError(
                f"{where}.item: item {item!r} is also at body.interactions.{first_seen[key]}; "
                f"send each item once")
        first_seen[key] = position
        rating = entry.rating
        if rating is None:  # the training mean (explicit) or a weight of 1 (implicit)
            values.append(served.rating_mean_ if explicit else 1.0)
            continue
        if not math.isfinite(rating):
            raise InvalidParameterError(f"{where}.rating: must be a finite number")
        if rating_range is not None:
            low, high = rating_range
            slack = 1e-5 * max(1.0, abs(low), abs(high))  # the range is stored in float32
            if not low - slack <= rating <= high + slack:
                raise InvalidParameterError(
                    f"{where}.rating: {rating:g} is outside the model's rating range "
                    f"{low:g}–{high:g}")
        if not explicit and not 0 <= rating <= FLOAT32_MAX:
            raise InvalidParameterError(f"{where}.rating: a weight must be >= 0 and fit in "
                                        f"float32, got {rating:g}")
        values.append(float(rating))
    return values


def _describe(loaded: Loaded, service: ModelService) -> dict[str, Any]:
    """The body of ``GET /v1/model`` (and of a successful reload) for a loaded model."""
    served = loaded.model
    return {"kind": served.kind, "config": served.get_params(), "feedback": served.feedback_,
            "users": served.n_users, "items": served.n_items, "model_dir": loaded.model_dir,
            "library_version": library_version(), "loaded_at": loaded.loaded_at,
            "version": loaded.version, "sha256": loaded.short_sha, "pid": service.pid,
            "workers": service.workers(),
            "features": {side: fitted.kinds for side in SIDES
                         if (fitted := getattr(served, "features_", {}).get(side))}}


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
        max_results=int(os.environ.get("LATENTREC_MAX_RESULTS", ServiceLimits.max_results)),
    )
    return create_app(model_dir, limits=limits,
                      state_dir=os.environ.get(STATE_DIR_ENV) or None, workers=workers,
                      reload_timeout=float(os.environ.get("LATENTREC_RELOAD_TIMEOUT",
                                                          RELOAD_TIMEOUT)),
                      ann=os.environ.get("LATENTREC_ANN") or None)
