"""Hostile and careless HTTP requests: each gets a clean 4xx with a JSON error naming the
culprit (or is handled), never a 500, and the served model never changes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from latentrec.serving import create_app

JSON = {"Content-Type": "application/json"}

#: (name, method, path, body: dict/str/bytes/None, status, a piece of the error message)
CASES: list[tuple[str, str, str, Any, int, str]] = [
    # ids
    ("unknown user", "GET", "/v1/users/ghost/recommendations", None, 404, "ghost"),
    ("unknown user names the HTTP way out", "GET", "/v1/users/ghost/recommendations", None,
     404, "fallback=true"),
    ("unknown item to similar", "GET", "/v1/items/ghost/similar", None, 404, "ghost"),
    ("unknown user in a batch", "POST", "/v1/recommendations", {"users": ["u1", "ghost"]},
     404, "ghost"),
    ("unknown pair", "POST", "/v1/predict", {"pairs": [{"user": "ghost", "item": "i1"}]}, 404,
     "ghost"),
    ("unknown fold-in item", "POST", "/v1/fold-in", {"interactions": [{"item": "ghost"}]}, 404,
     "ghost"),
    # k and sizes
    ("k zero", "GET", "/v1/users/u1/recommendations?k=0", None, 422, "k"),
    ("k negative", "GET", "/v1/users/u1/recommendations?k=-3", None, 422, "k"),
    ("k text", "GET", "/v1/users/u1/recommendations?k=ten", None, 422, "k"),
    ("k beyond the limit", "GET", "/v1/users/u1/recommendations?k=100000000000", None, 422,
     "k"),
    ("k float", "POST", "/v1/recommendations", {"users": ["u1"], "k": 2.5}, 422, "k"),
    ("k bool", "POST", "/v1/recommendations", {"users": ["u1"], "k": True}, 422, "k"),
    ("too many users", "POST", "/v1/recommendations", {"users": ["u1"] * 5000}, 422,
     "users"),
    ("answer too large", "POST", "/v1/recommendations",
     {"users": [f"u{i % 30}" for i in range(900)], "k": 1000}, 422, "results"),
    ("no users", "POST", "/v1/recommendations", {"users": []}, 422, "users"),
    ("no pairs", "POST", "/v1/predict", {"pairs": []}, 422, "pairs"),
    ("no interactions", "POST", "/v1/fold-in", {"interactions": []}, 422, "interactions"),
    # shapes and types
    ("unknown field", "POST", "/v1/recommendations", {"users": ["u1"], "colour": "blue"}, 422,
     "colour"),
    ("users not a list", "POST", "/v1/recommendations", {"users": "u1"}, 422, "users"),
    ("id as an object", "POST", "/v1/recommendations", {"users": [{"id": 1}]}, 422, "users"),
    ("id as a float", "POST", "/v1/predict", {"pairs": [{"user": 1.5, "item": "i1"}]}, 422,
     "user"),
    ("pair without an item", "POST", "/v1/predict", {"pairs": [{"user": "u1"}]}, 422, "item"),
    ("exclude_seen as text", "POST", "/v1/recommendations",
     {"users": ["u1"], "exclude_seen": "yes"}, 422, "exclude_seen"),
    ("fallback as text", "POST", "/v1/predict",
     {"pairs": [{"user": "u1", "item": "i1"}], "fallback": "yes"}, 422, "fallback"),
    ("body not JSON", "POST", "/v1/recommendations", b"{users: [u1]", 422, ""),
    ("body a list", "POST", "/v1/recommendations", [1, 2, 3], 422, ""),
    ("body empty", "POST", "/v1/predict", b"", 422, ""),
    ("body nested 100,000 deep", "POST", "/v1/predict",
     b'{"pairs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 422, ""),
    ("body too large", "POST", "/v1/predict",
     b'{"pairs": [' + b'{"user": "u1", "item": "i1"},' * 60_000 + b"]}", 413, ""),
    # fold-in values
    ("fold-in rating 1e30", "POST", "/v1/fold-in",
     {"interactions": [{"item": "i1", "rating": 1e30}]}, 422, "rating"),
    ("fold-in rating 1e300", "POST", "/v1/fold-in",
     {"interactions": [{"item": "i1", "rating": 1e300}]}, 422, "rating"),
    ("fold-in rating -50", "POST", "/v1/fold-in",
     {"interactions": [{"item": "i1", "rating": -50}]}, 422, "rating"),
    ("fold-in rating above the range", "POST", "/v1/fold-in",
     {"interactions": [{"item": "i1", "rating": 5.5}]}, 422, "rating"),
    ("fold-in rating as text", "POST", "/v1/fold-in",
     {"interactions": [{"item": "i1", "rating": "five"}]}, 422, "rating"),
    ("fold-in rating NaN", "POST", "/v1/fold-in",
     b'{"interactions": [{"item": "i1", "rating": NaN}]}', 422, ""),
    ("fold-in rating Infinity", "POST", "/v1/fold-in",
     b'{"interactions": [{"item": "i1", "rating": Infinity}]}', 422, ""),
    ("fold-in rating 1e999", "POST", "/v1/fold-in",
     b'{"interactions": [{"item": "i1", "rating": 1e999}]}', 422, ""),
    ("fold-in item twice", "POST", "/v1/fold-in",
     {"interactions": [{"item": "i1", "rating": 5}, {"item": "i1", "rating": 1}]}, 422,
     "i1"),
    # paths, methods, admin
    ("path traversal", "GET", "/v1/users/..%2F..%2Fetc%2Fpasswd/recommendations", None, 404,
     ""),
    ("unknown route", "GET", "/v2/everything", None, 404, ""),
    ("wrong method", "DELETE", "/v1/predict", None, 405, ""),
    ("reload without a token", "POST", "/admin/reload", {"model_dir": "/tmp"}, 401, ""),
]


@pytest.fixture(scope="module")
def client(workspace: Path, monkeypatch_module: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch_module.setenv("LATENTREC_ADMIN_TOKEN", "secret")
    with TestClient(create_app(workspace / "model"), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    patch = pytest.MonkeyPatch()
    yield patch
    patch.undo()


def _send(client: TestClient, method: str, path: str, body: Any) -> Any:
    if body is None:
        return client.request(method, path)
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.request(method, path, content=content, headers=JSON)


@pytest.mark.parametrize(("name", "method", "path", "body", "status", "culprit"), CASES,
                         ids=[case[0] for case in CASES])
def test_request(name: str, method: str, path: str, body: Any, status: int, culprit: str,
                 client: TestClient) -> None:
    before = client.get("/v1/model").json()
    response = _send(client, method, path, body)
    assert response.status_code == status, response.text
    assert response.status_code < 500
    if culprit:
        assert culprit in response.text, response.text
    assert client.get("/v1/model").json() == before  # the served model did not change


@pytest.mark.parametrize(("name", "model_dir", "message"), [
    ("a folder that does not exist", "{w}/absent", "absent"),
    ("a data file", "{w}/ratings.csv", "ratings.csv"),
    ("a folder that is not a model", "{w}", "model"),
])
def test_a_bad_reload_is_refused_and_the_old_model_serves(name: str, model_dir: str,
                                                          message: str, workspace: Path,
                                                          client: TestClient) -> None:
    before = client.get("/v1/model").json()
    response = client.post("/admin/reload", json={"model_dir": model_dir.format(w=workspace)},
                           headers={"Authorization": "Bearer secret"})
    assert 400 <= response.status_code < 500, response.text
    assert message in response.text
    assert client.get("/v1/model").json() == before
    assert client.get("/v1/users/u1/recommendations?k=2").status_code == 200


def test_the_same_requests_done_right_are_answered(client: TestClient) -> None:
    assert client.get("/v1/users/u1/recommendations?k=2").status_code == 200
    answer = client.get("/v1/users/ghost/recommendations?k=2&fallback=true").json()
    assert answer["fallback"] is True and len(answer["items"]) == 2
    fold = client.post("/v1/fold-in", json={"interactions": [{"item": "i1", "rating": 5},
                                                             {"item": "i2", "rating": 1}]})
    assert fold.status_code == 200, fold.text
