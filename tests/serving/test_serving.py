"""The HTTP service: in-process with TestClient, as a real `latentrec serve` subprocess, and
against its own OpenAPI schema with schemathesis."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import settings

from latentrec import BiasedMF, ImplicitALS, Interactions
from latentrec.datasets import synthetic
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


def test_health_and_model_info(client: TestClient, explicit_dir: Path) -> None:
    assert client.get("/health").json() == {"status": "ok", "model": "biased-mf", "items": 80}
    info = client.get("/v1/model").json()
    assert info["kind"] == "biased-mf" and info["users"] == 120
    assert info["model_dir"] == str(explicit_dir)
    assert info["config"]["factors"] == 4


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


def test_string_ids_that_look_like_numbers(string_ids_dir: Path) -> None:
    served = TestClient(create_app(string_ids_dir))
    assert served.get("/v1/users/100000/recommendations").json()["user"] == "100000"
    assert served.get("/v1/users/100001/recommendations").status_code == 404
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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def server(explicit_dir: Path, tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    log = tmp_path / "server.log"
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "latentrec.cli.main", "serve", str(explicit_dir), "--port",
             str(port)], stdout=sink, stderr=sink, env={**os.environ, "PYTHONWARNINGS": "error"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(log.read_text()) from None
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_real_server_over_http(server: str) -> None:
    with urllib.request.urlopen(f"{server}/v1/users/3/recommendations?k=2") as response:
        body = json.loads(response.read())
    assert body["user"] == 3 and len(body["items"]) == 2
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(f"{server}/v1/users/nobody/recommendations")
    assert error.value.code == 404
    error.value.close()
    request = urllib.request.Request(f"{server}/v1/predict", method="POST",
                                     data=json.dumps({"pairs": [{"user": 1, "item": 1}]})
                                     .encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        assert "predictions" in json.loads(response.read())


def test_serve_refuses_a_bad_model_directory(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "latentrec.cli.main", "serve",
                           str(tmp_path)], capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert "not a latentrec model directory" in done.stderr
    assert "Traceback" not in done.stderr


def _schema_app() -> object:
    data = synthetic(60, 40, density=0.2, seed=2)
    model = BiasedMF(factors=3, epochs=2).fit(data, show_progress=False)
    return create_app(model=model, limits=ServiceLimits(max_k=100, max_batch=50))


schemathesis = pytest.importorskip("schemathesis")
schema = schemathesis.openapi.from_asgi("/openapi.json", _schema_app())


@schema.parametrize()
@settings(max_examples=25, deadline=None)
def test_api_conforms_to_its_schema(case: object) -> None:
    # no 5xx, documented status codes, bodies matching the response schemas
    case.call_and_validate()  # type: ignore[attr-defined]


def test_every_worker_follows_a_reload(explicit_dir: Path, string_ids_dir: Path,
                                       tmp_path: Path) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    env = {**os.environ, "LATENTREC_ADMIN_TOKEN": "tok"}
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "latentrec.cli.main", "serve", str(explicit_dir), "--port",
             str(port), "--workers", "2"], stdout=sink, stderr=sink, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1):
                    break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        request = urllib.request.Request(
            f"{url}/admin/reload", method="POST",
            data=json.dumps({"model_dir": str(string_ids_dir)}).encode(),
            headers={"Content-Type": "application/json", "Authorization": "Bearer tok"})
        with urllib.request.urlopen(request) as response:
            assert json.loads(response.read())["kind"] == "ials"
        # followers poll every 0.5 s; on a busy machine that can take longer, so wait until
        # 40 fresh connections in a row (they land on both workers) answer with the new model
        deadline = time.monotonic() + 60
        while True:
            kinds = set()
            for _ in range(40):
                with urllib.request.urlopen(f"{url}/health") as response:
                    kinds.add(json.loads(response.read())["model"])
            if kinds == {"ials"} or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert kinds == {"ials"}
    finally:
        process.terminate()
        process.wait(timeout=30)
