"""Side features over HTTP: an anonymous user described by features (and interactions) in
`POST /v1/fold-in`, catalogue additions through `POST /admin/items` reaching every worker, and
hostile feature inputs refused with 4xx (in-process with TestClient, and a real `latentrec
serve` with two workers)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from latentrec import BiasedMF, ImplicitALS, Interactions, read_features
from latentrec.datasets import synthetic
from latentrec.serving import ServiceLimits, create_app

# torch warns once per process when latentrec.models.factor.hybrid_table builds its CSR tensor
GENRES = ("A", "B", "C")
AUTH = {"Authorization": "Bearer s3cret"}


def genre_of(item: str) -> str:
    return GENRES[int(item.lstrip("icn")) % 3]


@pytest.fixture(scope="module")
def hybrid_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Users who each play items of one genre; users have a favourite genre and an age, items
    a genre; c0..c5 are items with features and no plays."""
    users, items = [], []
    for user in range(45):
        for step in range(6):
            users.append(f"u{user}")
            items.append(f"i{(user % 3) + 3 * ((user + step) % 10)}")
    data = Interactions.from_arrays(users, items, feedback="implicit")
    item_ids = [f"i{i}" for i in range(30)] + [f"c{i}" for i in range(6)]
    item_features = read_features(pd.DataFrame(
        {"item": item_ids, "genre": [genre_of(i) for i in item_ids]}), "item")
    user_features = read_features(pd.DataFrame(
        {"user": [f"u{u}" for u in range(45)], "favourite": [GENRES[u % 3] for u in range(45)],
         "age": [20 + u % 30 for u in range(45)]}), "user")
    model = ImplicitALS(factors=8, epochs=8, seed=1).fit(
        data, user_features=user_features, item_features=item_features, show_progress=False)
    path = tmp_path_factory.mktemp("served") / "hybrid"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def plain_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("served") / "plain"
    BiasedMF(factors=4, epochs=2).fit(synthetic(60, 40, density=0.2, seed=2),
                                      show_progress=False).save(path)
    return path


@pytest.fixture
def client(hybrid_dir: Path) -> TestClient:
    return TestClient(create_app(hybrid_dir, limits=ServiceLimits(max_batch=5)))


def _sha(model_dir: Path) -> str:
    return hashlib.sha256((model_dir / "model.json").read_bytes()).hexdigest()[:12]


def test_the_model_names_its_features(client: TestClient) -> None:
    assert client.get("/v1/model").json()["features"] == {
        "users": {"age": "numeric", "favourite": "categorical"},
        "items": {"genre": "categorical"}}


@pytest.mark.parametrize("genre", GENRES)
def test_an_anonymous_user_with_a_genre_gets_that_genre(client: TestClient, genre: str) -> None:
    answer = client.post("/v1/fold-in", json={"features": {"favourite": genre}, "k": 6})
    assert answer.status_code == 200, answer.text
    assert "warnings" not in answer.json()
    assert [genre_of(e["item"]) for e in answer.json()["items"]] == [genre] * 6


def test_an_anonymous_user_with_features_and_interactions(client: TestClient) -> None:
    answer = client.post("/v1/fold-in", json={
        "interactions": [{"item": "i1"}, {"item": "i4"}], "features": {"favourite": "B",
                                                                        "age": 33}, "k": 5})
    assert answer.status_code == 200, answer.text
    items = [e["item"] for e in answer.json()["items"]]
    assert not {"i1", "i4"} & set(items)  # the items given are excluded
    assert {genre_of(i) for i in items} == {"B"}


@pytest.mark.parametrize("genre", GENRES)
def test_the_batch_endpoint_takes_an_anonymous_user(client: TestClient, genre: str) -> None:
    answer = client.post("/v1/recommendations", json={"features": {"favourite": genre}, "k": 6})
    assert answer.status_code == 200, answer.text
    (record,) = answer.json()["recommendations"]
    assert record["user"] is None and record["fallback"] is False
    assert [genre_of(e["item"]) for e in record["items"]] == [genre] * 6
    # the same answer as the first spelling, POST /v1/fold-in
    folded = client.post("/v1/fold-in", json={"features": {"favourite": genre}, "k": 6})
    assert folded.json()["items"] == record["items"]


def test_the_batch_endpoint_with_features_and_interactions(client: TestClient) -> None:
    answer = client.post("/v1/recommendations", json={
        "interactions": [{"item": "i1"}, {"item": "i4"}],
        "features": {"favourite": "Western", "age": 33}, "k": 5})
    assert answer.status_code == 200, answer.text
    items = [e["item"] for e in answer.json()["recommendations"][0]["items"]]
    assert len(items) == 5 and not {"i1", "i4"} & set(items)
    assert answer.json()["warnings"][0].startswith("1 unknown value of 'favourite' ignored")


@pytest.mark.parametrize(
    ("body", "message"),
    [({"k": 3}, "give users, or an anonymous user's interactions, features or both"),
     ({"users": ["u1"], "features": {"favourite": "A"}}, "not both"),
     ({"features": {"favourite": "A"}, "exclude": ["i1"]}, "for users given by id"),
     ({"features": {"favourite": "A"}, "fallback": True}, "for users given by id"),
     ({"features": {"colour": "red"}}, "body.features.colour: the model has no user feature"),
     ({"interactions": [{"item": "nope"}]}, "nope")])
def test_the_batch_endpoint_refuses_a_bad_anonymous_user(client: TestClient,
                                                         body: dict[str, Any],
                                                         message: str) -> None:
    answer = client.post("/v1/recommendations", json=body)
    assert answer.status_code in (404, 422), answer.text
    detail = answer.json()["detail"]
    assert message in detail and "\n" not in detail


def test_unknown_feature_values_are_left_out_and_named(client: TestClient) -> None:
    answer = client.post("/v1/fold-in", json={"features": {"favourite": "Western", "age": 30},
                                              "k": 3})
    assert answer.status_code == 200, answer.text
    warnings = answer.json()["warnings"]
    assert len(warnings) == 1
    assert warnings[0].startswith("1 unknown value of 'favourite' ignored in 1 row (first: "
                                  "'Western')")
    assert len(answer.json()["items"]) == 3


def test_non_finite_feature_values_are_422(client: TestClient) -> None:
    for number in (b"1e999", b"NaN", b"-Infinity"):
        answer = client.post("/v1/fold-in", content=b'{"features": {"age": ' + number + b"}}",
                             headers={"Content-Type": "application/json"})
        assert answer.status_code == 422, number
        assert answer.json()["detail"].startswith("body.features.age")


@pytest.mark.parametrize(
    ("body", "message"),
    [({"features": {"colour": "red"}},
      "body.features.colour: the model has no user feature 'colour'; its user features: age, "
      "favourite"),
     ({"features": {"age": "old"}}, "body.features.age: must be a number"),
     ({"features": {"age": True}}, "body.features.age: must be a number"),
     ({"features": {"age": [30]}}, "body.features.age: must be a number"),
     ({"features": {"favourite": {"A": 1.0}}}, "body.features.favourite: weights are for tags"),
     ({"features": {"favourite": ["A", "B"]}}, "favourite' is a categorical feature"),
     ({"features": {"favourite": [["A"]]}}, "body.features.favourite"),
     ({"features": {"favourite": None}}, "body.features.favourite"),
     ({"features": {"age": 1e308}}, "far outside what training saw"),
     ({"features": {}}, "body.features"),
     ({"features": "A"}, "body.features"),
     ({"k": 3}, "give interactions, features, or both"),
     ({"interactions": [], "features": {"favourite": "A"}}, "body.interactions"),
     ({"features": {"favourite": "A"}, "extra": 1}, "body.extra")])
def test_hostile_features_are_422(client: TestClient, body: dict[str, Any],
                                  message: str) -> None:
    answer = client.post("/v1/fold-in", json=body)
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert message in detail and "\n" not in detail


def test_a_model_without_user_features_refuses_them(plain_dir: Path) -> None:
    client = TestClient(create_app(plain_dir))
    answer = client.post("/v1/fold-in", json={"features": {"favourite": "A"}})
    assert answer.status_code == 422
    assert answer.json()["detail"] == ("body.features: this biased-mf model was trained "
                                       "without user features")
    assert client.get("/v1/model").json()["features"] == {}


# ---------------------------------------------------------------------- POST /admin/items
@pytest.fixture
def served_copy(hybrid_dir: Path, tmp_path: Path) -> Path:
    """A copy of the model in a folder of its own (the new directories go next to it)."""
    import shutil

    target = tmp_path / "models" / "hybrid"
    shutil.copytree(hybrid_dir, target)
    return target


@pytest.fixture
def admin(served_copy: Path, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    monkeypatch.setenv("LATENTREC_ADMIN_TOKEN", "s3cret")
    return TestClient(create_app(served_copy, limits=ServiceLimits(max_batch=5)))


NEW_ITEMS = {"items": [{"item": "n0", "features": {"genre": "A"}},
                       {"item": "n1", "features": {"genre": ["B"]}}]}


def test_added_items_are_served_from_a_new_directory(admin: TestClient,
                                                     served_copy: Path) -> None:
    before = (served_copy / "model.json").read_bytes()
    answer = admin.post("/admin/items", json=NEW_ITEMS, headers=AUTH)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["added"] == ["n0", "n1"] and body["items"] == 38 and body["version"] == 2
    new_dir = Path(body["model_dir"])
    assert new_dir.parent == served_copy.parent and new_dir.name.startswith("hybrid+items-")
    assert body["sha256"] == _sha(new_dir)
    assert (served_copy / "model.json").read_bytes() == before  # never written in place
    health = admin.get("/health").json()
    assert (health["version"], health["sha256"], health["items"]) == (2, body["sha256"], 38)
    similar = admin.get("/v1/items/n0/similar", params={"k": 4}).json()
    assert {genre_of(e["item"]) for e in similar["items"]} == {"A"}
    ranked = admin.post("/v1/recommendations", json={"users": ["u1"], "k": 38}).json()
    assert "n1" in [e["item"] for e in ranked["recommendations"][0]["items"]]
    # a second addition starts from the first one's model, and its name does not grow
    again = admin.post("/admin/items", json={"items": [{"item": "n2", "features": {
        "genre": "C"}}]}, headers=AUTH).json()
    assert again["items"] == 39 and again["version"] == 3
    assert Path(again["model_dir"]).name.count("+items-") == 1


def test_known_items_are_409_and_nothing_changes(admin: TestClient) -> None:
    answer = admin.post("/admin/items", json={"items": [
        {"item": "n5", "features": {"genre": "A"}}, {"item": "i3", "features": {"genre": "A"}}]},
        headers=AUTH)
    assert answer.status_code == 409
    assert answer.json()["detail"] == ("body.items.1.item: item 'i3' is already in the model; "
                                       "nothing was added")
    assert admin.get("/health").json()["version"] == 1
    assert admin.get("/v1/items/n5/similar").status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [({"items": [{"item": "n7", "features": {"colour": "red"}}]}, 422,
      "body.items.0.features.colour: the model has no item feature 'colour'; its item "
      "features: genre"),
     ({"items": [{"item": "n7", "features": {"genre": "A"}},
                 {"item": "n7", "features": {"genre": "B"}}]}, 422,
      "body.items.1.item: item 'n7' is also at body.items.0; send each item once"),
     ({"items": [{"item": "n7", "features": {"genre": {"A": 2}}}]}, 422,
      "body.items.0.features.genre: weights are for tags"),
     ({"items": [{"item": True, "features": {"genre": "A"}}]}, 422, "body.items.0.item"),
     ({"items": [{"item": "n7"}]}, 422, "body.items.0.features"),
     ({"items": []}, 422, "body.items"),
     ({"items": [{"item": f"m{i}", "features": {"genre": "A"}} for i in range(6)]}, 422,
      "body.items"),
     ({"model_dir": "/"}, 422, "body")])
def test_hostile_additions_are_4xx(admin: TestClient, body: dict[str, Any], status: int,
                                   message: str) -> None:
    answer = admin.post("/admin/items", json=body, headers=AUTH)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["detail"]
    assert admin.get("/health").json()["version"] == 1


def test_additions_need_the_admin_token(admin: TestClient, served_copy: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
        answer = admin.post("/admin/items", json=NEW_ITEMS, headers=headers)
        assert answer.status_code == 401
    monkeypatch.delenv("LATENTREC_ADMIN_TOKEN")
    off = TestClient(create_app(served_copy)).post("/admin/items", json=NEW_ITEMS, headers=AUTH)
    assert off.status_code == 404
    assert "LATENTREC_ADMIN_TOKEN" in off.json()["detail"]
    assert sorted(p.name for p in served_copy.parent.iterdir()) == ["hybrid"]


def test_a_model_without_factors_refuses_an_anonymous_user(tmp_path: Path) -> None:
    from latentrec import Popularity

    path = tmp_path / "popular"
    Popularity().fit(synthetic(30, 20, density=0.3, seed=4, feedback="implicit"),
                     show_progress=False).save(path)
    client = TestClient(create_app(path))
    for body in ({"interactions": [{"item": 1}]}, {"features": {"favourite": "A"}}):
        answer = client.post("/v1/recommendations", json=body)
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"] == ("Popularity does not take an anonymous user "
                                           "(fold-in)")


def test_a_model_without_item_features_cannot_take_items(plain_dir: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    monkeypatch.setenv("LATENTREC_ADMIN_TOKEN", "s3cret")
    answer = TestClient(create_app(plain_dir)).post("/admin/items", json={
        "items": [{"item": 999, "features": {"genre": "A"}}]}, headers=AUTH)
    assert answer.status_code == 422
    assert answer.json()["detail"] == ("this biased-mf model was trained without item "
                                       "features, so it cannot take new items by their "
                                       "features")


def test_an_in_memory_model_cannot_take_items(hybrid_dir: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from latentrec import load

    monkeypatch.setenv("LATENTREC_ADMIN_TOKEN", "s3cret")
    answer = TestClient(create_app(model=load(hybrid_dir))).post("/admin/items", json=NEW_ITEMS,
                                                                 headers=AUTH)
    assert answer.status_code == 409
    assert "given in memory" in answer.json()["detail"]


# ---------------------------------------------------------------------- `latentrec serve`
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _call(url: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(
        url, method="GET" if body is None else "POST",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


@contextlib.contextmanager
def _serving(model_dir: Path, folder: Path, workers: int) -> Iterator[str]:
    """`latentrec serve` in a subprocess, until every worker serves."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = folder / "server.log"
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "latentrec.cli.main", "serve", str(model_dir), "--port",
             str(port), "--workers", str(workers)], stdout=sink, stderr=sink,
            env={**os.environ, "PYTHONWARNINGS": "error", "LATENTREC_ADMIN_TOKEN": "s3cret",
                 "TMPDIR": str(folder)})
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if len(_call(f"{url}/v1/model")["workers"]) == workers:
                    break
            except OSError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=60)


def test_every_worker_serves_the_added_items(served_copy: Path, tmp_path: Path) -> None:
    with _serving(served_copy, tmp_path, workers=2) as url:
        added = _call(f"{url}/admin/items", NEW_ITEMS, AUTH)
        identity = (added["version"], added["sha256"])
        assert identity == (2, _sha(Path(added["model_dir"])))
        # the answer came once every worker served the new model: no waiting here
        assert [(w["version"], w["sha256"]) for w in added["workers"]] == [identity] * 2
        pids = set()
        for _ in range(20):  # fresh connections, spread over the workers
            health = _call(f"{url}/health")
            pids.add(health["pid"])
            assert (health["version"], health["sha256"], health["items"]) == (*identity, 38)
            similar = _call(f"{url}/v1/items/n0/similar?k=3")
            assert {genre_of(e["item"]) for e in similar["items"]} == {"A"}
            cold = _call(f"{url}/v1/fold-in", {"features": {"favourite": "B"}, "k": 40})
            assert "n1" in [e["item"] for e in cold["items"]]
        assert pids == {w["pid"] for w in added["workers"]}
        with pytest.raises(urllib.error.HTTPError) as refused:
            _call(f"{url}/admin/items", NEW_ITEMS, AUTH)
        assert refused.value.code == 409
        refused.value.close()
