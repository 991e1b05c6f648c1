"""The HTTP service: in-process with TestClient, as a real `latentrec serve` subprocess, and
against its own OpenAPI schema with schemathesis."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient
from hypothesis import settings
from safetensors.torch import load_file, save_file

from latentrec import BiasedMF, ImplicitALS, Interactions
from latentrec.datasets import synthetic
from latentrec.errors import ModelFileError
from latentrec.serving import ServiceLimits, create_app


@pytest.fixture(scope="module")
def explicit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = synthetic(120, 80, density=0.1, seed=1)
    path = tmp_path_factory.mktemp("served") / "explicit"
    BiasedMF(factors=4, epochs=3).fit(data, show_progress=False).save(path)
    return path


@pytest.fixture(scope="module")
def string_ids_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = Interactions.from_arrays(
        ["ann", "ann", "bob", "bob", "cat", "cat", "100000"],
        ["x", "y", "x", "z", "y", "z", "w"], feedback="implicit")
    path = tmp_path_factory.mktemp("served") / "strings"
    ImplicitALS(factors=2, epochs=2).fit(data, show_progress=False).save(path)
    return path


@pytest.fixture
def client(explicit_dir: Path) -> TestClient:
    return TestClient(create_app(explicit_dir, limits=ServiceLimits(max_k=50, max_batch=5,
                                                                     max_body_bytes=2000)))


def _sha(model_dir: Path) -> str:
    return hashlib.sha256((model_dir / "model.json").read_bytes()).hexdigest()[:12]


def _identity(body: dict[str, Any]) -> tuple[int, str]:
    return body["version"], body["sha256"]


def test_health_and_model_info(client: TestClient, explicit_dir: Path) -> None:
    assert client.get("/health").json() == {
        "status": "ok", "model": "biased-mf", "items": 80, "version": 1,
        "sha256": _sha(explicit_dir), "pid": os.getpid()}
    info = client.get("/v1/model").json()
    assert info["kind"] == "biased-mf" and info["users"] == 120
    assert info["model_dir"] == str(explicit_dir)
    assert info["config"]["factors"] == 4
    assert _identity(info) == (1, _sha(explicit_dir)) and info["pid"] == os.getpid()
    assert info["workers"] == [{"pid": os.getpid(), "version": 1,
                                "sha256": _sha(explicit_dir)}]


def test_user_recommendations(client: TestClient) -> None:
    body = client.get("/v1/users/7/recommendations", params={"k": 3}).json()
    assert body["user"] == 7  # the raw id, an integer, although the URL carries text
    assert len(body["items"]) == 3
    scores = [entry["score"] for entry in body["items"]]
    assert scores == sorted(scores, reverse=True)


def test_batch_recommendations_with_allow_and_deny_lists(client: TestClient) -> None:
    response = client.post("/v1/recommendations", json={
        "users": [1, 2], "k": 3, "items": [0, 1, 2, 3, 4, 5], "exclude": [0]})
    assert response.status_code == 200
    for record in response.json()["recommendations"]:
        assert {entry["item"] for entry in record["items"]} <= {1, 2, 3, 4, 5}


def test_similar_items_predict_and_fold_in(client: TestClient) -> None:
    similar = client.get("/v1/items/3/similar", params={"k": 2}).json()
    assert similar["item"] == 3 and len(similar["items"]) == 2
    assert 3 not in [entry["item"] for entry in similar["items"]]
    predicted = client.post("/v1/predict", json={"pairs": [{"user": 1, "item": 2},
                                                           {"user": "3", "item": 4}]}).json()
    assert [p["user"] for p in predicted["predictions"]] == [1, 3]
    assert all(1.0 <= p["prediction"] <= 5.0 for p in predicted["predictions"])
    folded = client.post("/v1/fold-in", json={"interactions": [{"item": 1, "rating": 5},
                                                               {"item": 2, "rating": 1}],
                                              "k": 4}).json()
    assert len(folded["items"]) == 4
    assert not {1, 2} & {entry["item"] for entry in folded["items"]}


def test_fold_in_without_ratings_uses_the_mean(client: TestClient) -> None:
    implicit = client.post("/v1/fold-in", json={"interactions": [{"item": 1}], "k": 3})
    assert implicit.status_code == 200
    assert len(implicit.json()["items"]) == 3


@pytest.mark.parametrize("path", ["/v1/users/no-such-user/recommendations",
                                  "/v1/users/100000/recommendations",
                                  "/v1/items/no-such-item/similar"])
def test_unknown_ids_are_404(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert "unknown" in response.json()["detail"]


def test_unknown_ids_name_the_http_way_out(client: TestClient) -> None:
    # the library's hint is on_unknown='fallback'; an HTTP client has its own spelling
    cases = [(client.get("/v1/users/nobody/recommendations"), "?fallback=true"),
             (client.post("/v1/recommendations", json={"users": [1, "nobody"]}),
              '"fallback": true'),
             (client.post("/v1/predict", json={"pairs": [{"user": 1, "item": 999}]}),
              '"fallback": true')]
    for response, way_out in cases:
        assert response.status_code == 404
        assert way_out in response.json()["detail"]
        assert "on_unknown" not in response.json()["detail"]
    similar = client.get("/v1/items/999/similar").json()["detail"]
    assert "unknown item: '999'" in similar and "fallback" not in similar


def test_fallback_answers_are_marked_and_ids_keep_their_type(client: TestClient) -> None:
    popular = client.get("/v1/users/nobody/recommendations",
                         params={"k": 3, "fallback": "true"}).json()
    assert popular["user"] == "nobody" and popular["fallback"] is True
    assert len(popular["items"]) == 3
    assert all(isinstance(entry["item"], int) for entry in popular["items"])
    # an unknown id in a URL is typed like the model's ids (integers here), a known one too
    assert client.get("/v1/users/99999/recommendations",
                      params={"fallback": "true"}).json()["user"] == 99999
    known = client.get("/v1/users/7/recommendations", params={"fallback": "true"}).json()
    assert known["user"] == 7 and known["fallback"] is False
    batch = client.post("/v1/recommendations", json={
        "users": [1, "nobody", 99999, "7"], "k": 2, "fallback": True}).json()["recommendations"]
    assert [(r["user"], r["fallback"]) for r in batch] == [
        (1, False), ("nobody", True), (99999, True), (7, False)]
    assert batch[1]["items"] == popular["items"][:2]
    predicted = client.post("/v1/predict", json={"pairs": [
        {"user": 1, "item": 2}, {"user": "nobody", "item": 2}, {"user": 1, "item": 999}],
        "fallback": True}).json()["predictions"]
    assert [(p["user"], p["item"], p["fallback"]) for p in predicted] == [
        (1, 2, False), ("nobody", 2, True), (1, 999, True)]


def test_string_ids_that_look_like_numbers(string_ids_dir: Path) -> None:
    served = TestClient(create_app(string_ids_dir))
    assert served.get("/v1/users/100000/recommendations").json()["user"] == "100000"
    assert served.get("/v1/users/100001/recommendations").status_code == 404
    # with string ids, an unknown "100001" stays text
    assert served.get("/v1/users/100001/recommendations",
                      params={"fallback": "true"}).json()["user"] == "100001"
    folded = served.post("/v1/fold-in", json={"interactions": [{"item": "x"}], "k": 2})
    assert folded.status_code == 200


@pytest.mark.parametrize(("method", "path", "payload", "status", "message"), [
    ("get", "/v1/users/1/recommendations?k=0", None, 422, "greater than or equal to 1"),
    ("get", "/v1/users/1/recommendations?k=51", None, 422, "less than or equal to 50"),
    ("get", "/v1/users/1/recommendations?k=ten", None, 422, "valid integer"),
    ("post", "/v1/recommendations", {"users": [1, 2, 3, 4, 5, 6]}, 422, "at most 5 items"),
    ("post", "/v1/recommendations", {"users": []}, 422, "at least 1"),
    ("post", "/v1/predict", {"pairs": [{"user": 1}]}, 422, "item"),
    ("post", "/v1/predict", {"pairs": [{"user": 1, "item": 999}]}, 404, "unknown item"),
    ("post", "/v1/predict", {"pairs": [{"user": 1, "item": 2}], "extra": 1}, 422, "extra"),
    ("post", "/v1/recommendations", {"users": list(range(600))}, 413, "over 2000 bytes"),
])
def test_bad_requests(client: TestClient, method: str, path: str, payload: object, status: int,
                      message: str) -> None:
    response = getattr(client, method)(path, json=payload) if payload is not None else (
        getattr(client, method)(path))
    assert response.status_code == status
    assert message in response.json()["detail"]


@pytest.mark.parametrize(("interactions", "field", "message"), [
    ([{"item": 1, "rating": 1e30}], "body.interactions.0.rating", "outside the model's rating"),
    ([{"item": 1, "rating": 4}, {"item": 2, "rating": -50}], "body.interactions.1.rating",
     "rating range 1–5"),
    ([{"item": 1, "rating": 5}, {"item": 2}, {"item": 1, "rating": 3}],
     "body.interactions.2.item", "also at body.interactions.0"),
    ([{"item": 1}, {"item": "1"}], "body.interactions.1.item", "send each item once"),
])
def test_fold_in_refuses_values_the_model_cannot_use(client: TestClient, interactions: object,
                                                     field: str, message: str) -> None:
    response = client.post("/v1/fold-in", json={"interactions": interactions})
    assert response.status_code == 422
    assert response.json()["detail"].startswith(f"{field}: ")
    assert message in response.json()["detail"]


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_fold_in_refuses_non_finite_numbers(client: TestClient, number: bytes) -> None:
    # Python's JSON reader turns these into floats; they must not reach the model
    body = b'{"interactions": [{"item": 1, "rating": ' + number + b"}]}"
    response = client.post("/v1/fold-in", content=body,
                           headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("body.interactions.0.rating: ")


def test_fold_in_weights_of_implicit_models_are_checked(string_ids_dir: Path) -> None:
    served = TestClient(create_app(string_ids_dir))
    for weight in (-2, 1e39):  # 1e39 is finite, but not in float32
        response = served.post("/v1/fold-in",
                               json={"interactions": [{"item": "x", "rating": weight}]})
        assert response.status_code == 422
        assert response.json()["detail"].startswith("body.interactions.0.rating: a weight must")
    assert served.post("/v1/fold-in", json={"interactions": [{"item": "x", "rating": 3}]}
                       ).status_code == 200


def test_answers_are_capped_by_users_times_k(explicit_dir: Path) -> None:
    # a small request must not build a huge answer: users times k is limited
    capped = TestClient(create_app(explicit_dir, limits=ServiceLimits(max_results=100)))
    response = capped.post("/v1/recommendations", json={"users": list(range(11)), "k": 10})
    assert response.status_code == 422
    assert "11 users × k=10 is 110 results, over the limit of 100" in response.json()["detail"]
    assert capped.post("/v1/recommendations", json={"users": list(range(10)), "k": 10}
                       ).status_code == 200
    single = capped.get("/v1/users/1/recommendations", params={"k": 101})
    assert single.status_code == 422 and "query.k" in single.json()["detail"]
    # the default: 1,000 users and k=1,000 (a 5 KB request) is refused
    default = TestClient(create_app(explicit_dir))
    response = default.post("/v1/recommendations", json={"users": [1] * 1000, "k": 1000})
    assert response.status_code == 422
    assert "over the limit of 100000" in response.json()["detail"]


def _chunked(payload: object) -> Iterator[bytes]:
    """A body sent in 100-byte chunks with no Content-Length (HTTP chunked encoding)."""
    encoded = json.dumps(payload).encode()
    for start in range(0, len(encoded), 100):
        yield encoded[start:start + 100]


def test_chunked_bodies_are_limited_too(client: TestClient) -> None:
    headers = {"content-type": "application/json"}
    large = client.post("/v1/recommendations", content=_chunked({"users": list(range(600))}),
                        headers=headers)
    assert large.status_code == 413
    assert "over 2000 bytes" in large.json()["detail"]
    small = client.post("/v1/recommendations", content=_chunked({"users": [1, 2], "k": 3}),
                        headers=headers)
    assert small.status_code == 200
    assert [len(entry["items"]) for entry in small.json()["recommendations"]] == [3, 3]


def test_malformed_json_is_422(client: TestClient) -> None:
    response = client.post("/v1/predict", content=b"{not json",
                           headers={"content-type": "application/json"})
    assert response.status_code == 422


def test_metrics_count_requests(client: TestClient) -> None:
    client.get("/v1/users/1/recommendations")
    client.get("/v1/users/nobody/recommendations")
    text = client.get("/metrics").text
    assert ('latentrec_requests_total{method="GET",route="/v1/users/{user}/recommendations",'
            'status="404"} 1') in text
    assert "latentrec_request_seconds_bucket" in text
    assert 'latentrec_model_info{kind="biased-mf"' in text


def test_reload_is_off_without_a_token(client: TestClient, explicit_dir: Path) -> None:
    response = client.post("/admin/reload", json={"model_dir": str(explicit_dir)})
    assert response.status_code == 404
    assert "LATENTREC_ADMIN_TOKEN" in response.json()["detail"]


@pytest.fixture
def admin(explicit_dir: Path, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    monkeypatch.setenv("LATENTREC_ADMIN_TOKEN", "s3cret")
    return TestClient(create_app(explicit_dir))


def test_reload_swaps_and_refuses_bad_models(admin: TestClient, string_ids_dir: Path,
                                             tmp_path: Path) -> None:
    body = {"model_dir": str(string_ids_dir)}
    assert admin.post("/admin/reload", json=body).status_code == 401
    assert admin.post("/admin/reload", json=body,
                      headers={"Authorization": "Bearer wrong"}).status_code == 401
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.json").write_text("{")
    refused = admin.post("/admin/reload", json={"model_dir": str(broken)},
                         headers={"Authorization": "Bearer s3cret"})
    assert refused.status_code == 409
    assert "still serving the old one" in refused.json()["detail"]
    assert admin.get("/health").json()["model"] == "biased-mf"
    swapped = admin.post("/admin/reload", json=body, headers={"Authorization": "Bearer s3cret"})
    assert swapped.status_code == 200
    assert swapped.json()["kind"] == "ials"
    assert admin.get("/v1/users/ann/recommendations").status_code == 200


def test_the_admin_token_must_come_as_bearer(admin: TestClient, explicit_dir: Path) -> None:
    body = {"model_dir": str(explicit_dir)}
    for header in ("s3cret", "Basic s3cret", "Bearers3cret", "Bearer", "Bearer s3cret x"):
        refused = admin.post("/admin/reload", json=body, headers={"Authorization": header})
        assert refused.status_code == 401, header
        assert refused.headers["www-authenticate"] == "Bearer"
        assert "Authorization: Bearer <token>" in refused.json()["detail"]
    for header in ("Bearer s3cret", "bearer s3cret", "Bearer  s3cret "):
        assert admin.post("/admin/reload", json=body,
                          headers={"Authorization": header}).status_code == 200, header


def test_identity_changes_with_every_reload(admin: TestClient, explicit_dir: Path,
                                            string_ids_dir: Path) -> None:
    auth = {"Authorization": "Bearer s3cret"}
    assert _identity(admin.get("/health").json()) == (1, _sha(explicit_dir))
    swapped = admin.post("/admin/reload", json={"model_dir": str(string_ids_dir)}, headers=auth)
    assert _identity(swapped.json()) == (2, _sha(string_ids_dir))
    assert _identity(admin.get("/health").json()) == (2, _sha(string_ids_dir))
    back = admin.post("/admin/reload", json={"model_dir": str(explicit_dir)}, headers=auth)
    assert _identity(back.json()) == (3, _sha(explicit_dir))  # versions only grow
    assert 'version="3"' in admin.get("/metrics").text


def _rewrite_weights(model_dir: Path, change: Callable[[dict[str, torch.Tensor]], None]) -> None:
    """Change a saved model's tensors, keeping model.json's checksum right (a model that was
    saved like this, not a damaged file)."""
    weights = model_dir / "weights.safetensors"
    tensors = load_file(str(weights))
    change(tensors)
    save_file(tensors, str(weights))
    meta = json.loads((model_dir / "model.json").read_text())
    meta["weights_sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    (model_dir / "model.json").write_text(json.dumps(meta))


def _nan_factor(tensors: dict[str, torch.Tensor]) -> None:
    tensors["user_factors"][0, 0] = float("nan")


def _infinite_bias(tensors: dict[str, torch.Tensor]) -> None:
    tensors["item_bias"][3] = float("inf")


def _nan_mean(model_dir: Path) -> None:
    meta = json.loads((model_dir / "model.json").read_text())
    meta["global_mean"] = float("nan")  # Python writes NaN, and its JSON reader accepts it
    (model_dir / "model.json").write_text(json.dumps(meta))


def _deeply_nested(model_dir: Path) -> None:
    depth = 200_000
    (model_dir / "model.json").write_text(
        '{"format": "latentrec-model", "format_version": 1, "x": ' + "[" * depth
        + "]" * depth + "}")


@pytest.fixture(params=["nan-factor", "infinite-bias", "nan-mean", "deeply-nested"])
def unservable_dir(request: pytest.FixtureRequest, explicit_dir: Path, tmp_path: Path) -> Path:
    path = tmp_path / request.param
    shutil.copytree(explicit_dir, path)
    if request.param == "nan-factor":
        _rewrite_weights(path, _nan_factor)
    elif request.param == "infinite-bias":
        _rewrite_weights(path, _infinite_bias)
    elif request.param == "nan-mean":
        _nan_mean(path)
    else:
        _deeply_nested(path)
    return path


def test_unservable_models_are_refused(admin: TestClient, explicit_dir: Path,
                                       unservable_dir: Path) -> None:
    before = admin.get("/health").json()
    refused = admin.post("/admin/reload", json={"model_dir": str(unservable_dir)},
                         headers={"Authorization": "Bearer s3cret"})
    assert refused.status_code == 409
    assert "still serving the old one" in refused.json()["detail"]
    assert admin.get("/health").json() == before
    assert admin.post("/v1/predict", json={"pairs": [{"user": 0, "item": 3}]}
                      ).status_code == 200
    with pytest.raises(ModelFileError):
        create_app(unservable_dir)


def test_an_answer_that_is_not_finite_is_422_not_500(explicit_dir: Path) -> None:
    # finite factors whose products overflow float32: the model loads, its answers do not
    model = BiasedMF(factors=4, epochs=1).fit(synthetic(30, 20, density=0.3, seed=1),
                                              show_progress=False)
    model.set_params(clip=False)
    model.user_factors_ = torch.full_like(model.user_factors_, 1e30)
    model.item_factors_ = torch.full_like(model.item_factors_, 1e30)
    served = TestClient(create_app(model=model), raise_server_exceptions=False)
    response = served.post("/v1/predict", json={"pairs": [{"user": 0, "item": 1}]})
    assert response.status_code == 422, response.text
    assert "not a finite number" in response.json()["detail"]
    # top-k leaves non-finite scores out of its lists (the library's choice): never a 500
    assert served.get("/v1/users/0/recommendations").status_code in (200, 422)
    assert served.post("/v1/fold-in", json={"interactions": [{"item": 1}]}
                       ).status_code in (200, 422)
    assert served.get("/health").status_code == 200


def test_no_request_fails_during_swaps(admin: TestClient, explicit_dir: Path,
                                       tmp_path: Path) -> None:
    twin = tmp_path / "twin"
    BiasedMF(factors=4, epochs=1, seed=5).fit(synthetic(120, 80, density=0.1, seed=1),
                                              show_progress=False).save(twin)
    failures: list[int] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            status = admin.get("/v1/users/5/recommendations", params={"k": 5}).status_code
            if status != 200:
                failures.append(status)

    workers = [threading.Thread(target=hammer) for _ in range(3)]
    for worker in workers:
        worker.start()
    for target in (twin, explicit_dir) * 3:
        assert admin.post("/admin/reload", json={"model_dir": str(target)},
                          headers={"Authorization": "Bearer s3cret"}).status_code == 200
    stop.set()
    for worker in workers:
        worker.join()
    assert failures == []


def test_openapi_schema_has_examples(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert "/v1/users/{user}/recommendations" in schema["paths"]
    assert "examples" in schema["components"]["schemas"]["PredictRequest"]


# ---------------------------------------------------------------------- several workers
# In-process: several applications sharing one state folder are the workers of one service
# (what `latentrec serve --workers N` runs in N processes). Each step waits on the service's
# own signals (the state folder, the answers), never on time.
AUTH = {"Authorization": "Bearer s3cret"}


@pytest.fixture
def service(explicit_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
            ) -> Callable[..., TestClient]:
    monkeypatch.setenv("LATENTREC_ADMIN_TOKEN", "s3cret")
    state = tmp_path / "state"

    def worker(workers: int = 2, reload_timeout: float = 60.0) -> TestClient:
        return TestClient(create_app(explicit_dir, state_dir=state, workers=workers,
                                     reload_timeout=reload_timeout))

    return worker


def _copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def _reload_in_background(client: TestClient, model_dir: Path
                          ) -> tuple[threading.Thread, list[Any]]:
    answers: list[Any] = []
    thread = threading.Thread(target=lambda: answers.append(client.post(
        "/admin/reload", json={"model_dir": str(model_dir)}, headers=AUTH)))
    thread.start()
    return thread, answers


def _wait_until(condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
    """Wait for a signal of the service; the deadline only turns a hang into a failure."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _proposed(state: Path) -> bool:
    with contextlib.suppress(OSError, ValueError):
        return json.loads((state / "current-model.json").read_text())["pending"] is not None
    return False


def test_a_reload_reaches_every_worker(service: Callable[..., TestClient],
                                       string_ids_dir: Path) -> None:
    first, second = service(), service()
    with second:  # the second worker runs (follows the service) while the first reloads
        swapped = first.post("/admin/reload", json={"model_dir": str(string_ids_dir)},
                             headers=AUTH)
        assert swapped.status_code == 200, swapped.text
        identity = _identity(swapped.json())
        assert identity == (2, _sha(string_ids_dir))
        # a 200 means every worker serves it already: nothing to wait for
        assert [_identity(w) for w in swapped.json()["workers"]] == [identity, identity]
        assert _identity(second.get("/health").json()) == identity
        assert second.get("/v1/users/ann/recommendations").status_code == 200


def test_a_reload_one_worker_cannot_load_is_withdrawn_everywhere(
        service: Callable[..., TestClient], explicit_dir: Path, string_ids_dir: Path,
        tmp_path: Path) -> None:
    first, second = service(), service()
    before = _identity(first.get("/health").json())
    fresh = _copy(string_ids_dir, tmp_path / "fresh")
    thread, answers = _reload_in_background(first, fresh)
    # the first worker has loaded and checked the model and proposed it; now the directory
    # breaks before the second worker looks at it
    _wait_until(lambda: _proposed(tmp_path / "state"), "the proposal")
    (fresh / "model.json").write_text("{")
    with second:
        thread.join()
        refused = answers[0]
        assert refused.status_code == 409, refused.text
        detail = refused.json()["detail"]
        assert "every worker still serves the old one" in detail
        assert f"worker pid {os.getpid()} could not load it" in detail
        # nobody switched: both serve the model they served before, and say so
        assert _identity(first.get("/health").json()) == before
        assert _identity(second.get("/health").json()) == before
        assert first.get("/v1/users/7/recommendations").status_code == 200
        assert second.get("/v1/users/7/recommendations").status_code == 200
        # and the next good reload goes through
        again = first.post("/admin/reload", json={"model_dir": str(string_ids_dir)},
                           headers=AUTH)
        assert again.status_code == 200, again.text
        assert _identity(second.get("/health").json()) == _identity(again.json())


def test_a_reload_a_worker_does_not_confirm_is_withdrawn(
        service: Callable[..., TestClient], string_ids_dir: Path) -> None:
    first, silent = service(reload_timeout=1.0), service()  # the second never follows
    before = _identity(first.get("/health").json())
    refused = first.post("/admin/reload", json={"model_dir": str(string_ids_dir)},
                         headers=AUTH)
    assert refused.status_code == 409
    assert "1 of 2 workers confirmed within 1 s" in refused.json()["detail"]
    assert _identity(first.get("/health").json()) == before
    assert _identity(silent.get("/health").json()) == before


def test_a_worker_that_starts_later_serves_the_current_model(
        service: Callable[..., TestClient], explicit_dir: Path, string_ids_dir: Path,
        tmp_path: Path) -> None:
    first, second = service(), service()
    current = _copy(string_ids_dir, tmp_path / "current")
    with second:
        swapped = first.post("/admin/reload", json={"model_dir": str(current)}, headers=AUTH)
        assert swapped.status_code == 200, swapped.text
    # a worker (re)started now - e.g. by uvicorn after a crash - is given the startup model
    # directory, but serves the model the service serves
    restarted = service()
    assert _identity(restarted.get("/health").json()) == _identity(swapped.json())
    assert restarted.get("/v1/users/ann/recommendations").status_code == 200
    # when it cannot load that model, it serves nothing rather than another model
    (current / "model.json").write_text((current / "model.json").read_text() + " ")
    broken = service()
    unavailable = broken.get("/health")
    assert unavailable.status_code == 503
    assert "could not load the service's model" in unavailable.json()["detail"]
    assert broken.get("/v1/users/7/recommendations").status_code == 503


# ---------------------------------------------------------------------- `latentrec serve`
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


@contextlib.contextmanager
def _serving(model_dir: Path, log: Path, *options: str, env: dict[str, str] | None = None,
             ready: Callable[[str], bool] | None = None) -> Iterator[tuple[str, Any]]:
    """`latentrec serve` in a subprocess, until the service says it is ready."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "latentrec.cli.main", "serve", str(model_dir), "--port",
             str(port), *options], stdout=sink, stderr=sink,
            env={**os.environ, "PYTHONWARNINGS": "error", **(env or {})})
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if ready is None or ready(url):
                    _get(f"{url}/health")
                    break
            except OSError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield url, process
    finally:
        process.terminate()
        process.wait(timeout=60)


@pytest.fixture(scope="module")
def server(explicit_dir: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("server")
    (folder / "tmp").mkdir()
    log = folder / "server.log"
    with _serving(explicit_dir, log, "--access-log", env={"TMPDIR": str(folder / "tmp")}
                  ) as (url, _):
        yield url, log


def test_real_server_over_http(server: tuple[str, Path]) -> None:
    url, _ = server
    body = _get(f"{url}/v1/users/3/recommendations?k=2")
    assert body["user"] == 3 and len(body["items"]) == 2
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(f"{url}/v1/users/nobody/recommendations")
    assert error.value.code == 404
    error.value.close()
    request = urllib.request.Request(f"{url}/v1/predict", method="POST",
                                     data=json.dumps({"pairs": [{"user": 1, "item": 1}]})
                                     .encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        assert "predictions" in json.loads(response.read())


def test_serve_says_where_and_what_it_serves(server: tuple[str, Path],
                                             explicit_dir: Path) -> None:
    url, log = server
    first = log.read_text().splitlines()[0]
    assert first == (f"latentrec: serving biased-mf model {_sha(explicit_dir)} (version 1) from "
                     f"{explicit_dir.resolve()} on {url} with 1 worker; API docs at /docs")
    health = _get(f"{url}/health")
    assert _identity(health) == (1, _sha(explicit_dir)) and health["pid"] > 0


def test_serve_access_log(server: tuple[str, Path]) -> None:
    url, log = server
    _get(f"{url}/v1/users/5/recommendations?k=1")
    _wait_until(lambda: '"GET /v1/users/5/recommendations?k=1 HTTP/1.1" 200' in log.read_text(),
                "the access log line")


def test_serve_removes_its_state_folder(explicit_dir: Path, tmp_path: Path) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    # what a service killed with -9 leaves behind is removed by the next one; a running
    # service's folder is not
    stale, running = temporary / "latentrec-serve-stale", temporary / "latentrec-serve-running"
    for folder, pid in ((stale, _dead_pid()), (running, os.getpid())):
        folder.mkdir()
        (folder / "owner.pid").write_text(str(pid))
    with _serving(explicit_dir, tmp_path / "server.log", env={"TMPDIR": str(temporary)}):
        assert not stale.exists() and running.exists()
        assert len(list(temporary.glob("latentrec-serve-*"))) == 2
    assert [p.name for p in temporary.glob("latentrec-serve-*")] == [running.name]


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_serve_refuses_a_bad_model_directory(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "latentrec.cli.main", "serve",
                           str(tmp_path)], capture_output=True, text=True, check=False,
                          timeout=120)
    assert done.returncode == 1
    assert "not a latentrec model directory" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_refuses_an_unservable_model(unservable_dir: Path) -> None:
    # a server that starts with such a model would never return: the timeout fails the test
    done = subprocess.run([sys.executable, "-m", "latentrec.cli.main", "serve",
                           str(unservable_dir), "--port", str(_free_port())],
                          capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("latentrec: error: ")
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.fixture(scope="module")
def two_workers(explicit_dir: Path, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("two-workers")

    def both_running(url: str) -> bool:  # the service's own list of its workers
        return len(_get(f"{url}/v1/model")["workers"]) == 2

    with _serving(explicit_dir, folder / "server.log", "--workers", "2",
                  env={"LATENTREC_ADMIN_TOKEN": "s3cret", "TMPDIR": str(folder)},
                  ready=both_running) as (url, _):
        yield url


def _reload_over_http(url: str, model_dir: Path) -> Any:
    request = urllib.request.Request(
        f"{url}/admin/reload", method="POST", data=json.dumps({"model_dir": str(model_dir)})
        .encode(), headers={"Content-Type": "application/json", **AUTH})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def test_every_worker_follows_a_reload(two_workers: str, string_ids_dir: Path) -> None:
    url = two_workers
    swapped = _reload_over_http(url, string_ids_dir)
    assert swapped["kind"] == "ials"
    identity = _identity(swapped)
    assert identity[1] == _sha(string_ids_dir)
    # the reload answered 200 only once every worker served the new model: no waiting here
    assert [_identity(w) for w in swapped["workers"]] == [identity, identity]
    for _ in range(20):  # fresh connections, spread over the workers
        health = _get(f"{url}/health")
        assert (health["model"], *_identity(health)) == ("ials", *identity)


def test_a_restarted_worker_serves_the_current_model(two_workers: str,
                                                     string_ids_dir: Path) -> None:
    url = two_workers
    swapped = _reload_over_http(url, string_ids_dir)  # the service started with another model
    identity = _identity(swapped)
    pids = [w["pid"] for w in swapped["workers"]]
    os.kill(pids[0], signal.SIGKILL)  # uvicorn starts a new worker

    def replaced() -> bool:
        workers = _get(f"{url}/v1/model")["workers"]
        return len(workers) == 2 and pids[0] not in [w["pid"] for w in workers]

    _wait_until(replaced, "the new worker", seconds=120)
    workers = _get(f"{url}/v1/model")["workers"]
    assert [_identity(w) for w in workers] == [identity, identity]
    for _ in range(20):
        health = _get(f"{url}/health")
        assert (health["model"], *_identity(health)) == ("ials", *identity)
        assert health["pid"] != pids[0]


def _schema_app() -> object:
    data = synthetic(60, 40, density=0.2, seed=2)
    model = BiasedMF(factors=3, epochs=2).fit(data, show_progress=False)
    return create_app(model=model, limits=ServiceLimits(max_k=100, max_batch=50))


schemathesis = pytest.importorskip("schemathesis")
schema = schemathesis.openapi.from_asgi("/openapi.json", _schema_app())


@schema.parametrize()
@settings(max_examples=25, deadline=None)
def test_api_conforms_to_its_schema(case: Any) -> None:
    # no 5xx, documented status codes, bodies matching the response schemas. An anonymous
    # user's body the schema allows may still be refused (422): the rating range is the served
    # model's (it changes with a reload), and neither "each item once" nor "users or an
    # anonymous user, not both" has a JSON Schema spelling here
    excluded = [schemathesis.checks.positive_data_acceptance] if (
        case.operation.path in ("/v1/fold-in", "/v1/recommendations")) else []
    case.call_and_validate(excluded_checks=excluded)
