"""benchmarks/cold_start.py's item holdout, its feature rule and its scorer, on tiny synthetic
data (no LightFM needed: it is a bench extra that CI does not install)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from latentrec.data import Interactions, read_features
from latentrec.errors import DataWarning

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def cold_start() -> Iterator[ModuleType]:
    """The script as a module (it imports ``_common`` from its own folder, as when run)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location("cold_start", BENCHMARKS / "cold_start.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["cold_start"] = module  # dataclasses look their module up here
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("cold_start", None)
        sys.path.remove(str(BENCHMARKS))


@pytest.fixture
def data() -> Interactions:
    """30 users x 20 items (string ids), about half of the pairs, every user and item used."""
    rng = np.random.default_rng(7)
    users, items = np.nonzero(rng.random((30, 20)) < 0.5)
    return Interactions.from_arrays([f"u{u}" for u in users], [f"i{i:02d}" for i in items],
                                    feedback="implicit")


def pairs(data: Interactions) -> set[tuple[str, str]]:
    frame = data.to_frame()
    return set(zip(frame["user"], frame["item"], strict=True))


def test_held_out_items_go_entirely_to_test(cold_start: ModuleType, data: Interactions) -> None:
    split = cold_start.cold_item_split(data, 0.2, seed=3)
    cold = set(split.cold_items.tolist())
    assert len(cold) == round(0.2 * data.n_items) == 4
    assert cold.isdisjoint(split.train.items.to_list())
    everything = pairs(data)
    assert pairs(split.test) == {pair for pair in everything if pair[1] in cold}
    assert pairs(split.train) == {pair for pair in everything if pair[1] not in cold}
    assert split.dropped_users == 0
    users, relevant = cold_start.relevant_cold(split)
    assert relevant.shape == (len(users), len(cold)) and relevant.nnz == len(split.test)
    assert (np.diff(relevant.indptr) > 0).all()


def test_a_test_user_without_training_interactions_is_dropped(
    cold_start: ModuleType, data: Interactions
) -> None:
    cold = cold_start.cold_item_split(data, 0.2, seed=3).cold_items
    frame = data.to_frame()
    both = Interactions.from_arrays([*frame["user"], "solo", "solo"], [*frame["item"], *cold[:2]],
                                    feedback="implicit")
    split = cold_start.cold_item_split(both, 0.2, seed=3)
    # the same item ids and seed hold out the same items, whatever else the data holds
    assert split.cold_items.tolist() == cold.tolist()
    assert split.dropped_users == 1
    assert "solo" not in split.test.users.to_list() + split.train.users.to_list()


def test_the_split_repeats_with_its_seed(cold_start: ModuleType, data: Interactions) -> None:
    first = cold_start.cold_item_split(data, 0.2, seed=11)
    again = cold_start.cold_item_split(data, 0.2, seed=11)
    other = cold_start.cold_item_split(data, 0.2, seed=12)
    assert first.cold_items.tolist() == again.cold_items.tolist()
    assert pairs(first.train) == pairs(again.train) and pairs(first.test) == pairs(again.test)
    assert first.cold_items.tolist() != other.cold_items.tolist()


def test_the_feature_vocabulary_comes_from_training_items_only(
    cold_start: ModuleType, data: Interactions
) -> None:
    items = sorted(data.items.to_list())
    table = pd.DataFrame({"item": items,
                          "genre": [f"g{n % 3}" for n in range(len(items))],
                          "own": [f"only-{item}" for item in items]})
    features = read_features(table, "item", multi=["genre", "own"])
    split = cold_start.cold_item_split(data, 0.2, seed=5)
    task, _ = cold_start.cold_task(split, features, seed=5, threads=1)
    fitted = task.fit_features(identity=True)
    columns = fitted.columns()
    train_items = sorted(split.train.items.to_list())
    assert sorted(columns.loc[columns["kind"] == "identity", "value"]) == train_items
    own = columns.loc[columns["feature"] == "own", "value"].tolist()
    assert sorted(own) == [f"only-{item}" for item in train_items]
    # a held-out item keeps the values training items share, and loses its own (counted)
    with pytest.warns(DataWarning, match="4 unknown values of 'own' ignored in 4 rows"):
        cold_rows = fitted.matrix(task.items)
    genre = (columns["feature"] == "genre").to_numpy()
    assert (cold_rows[:, genre].getnnz(axis=1) == 1).all()
    assert cold_rows[:, ~genre].nnz == 0


def test_scores_rank_only_the_candidates(cold_start: ModuleType, data: Interactions) -> None:
    split = cold_start.cold_item_split(data, 0.2, seed=3)
    _, relevant = cold_start.relevant_cold(split)
    perfect = cold_start.score_cold(relevant.toarray(), relevant, seed=0)
    assert perfect == {"ndcg@10": 1.0, "recall@20": 1.0}
    ties = cold_start.top_columns(np.zeros((2, 5)), 3, seed=0)
    assert ties.shape == (2, 3) and ties[0].tolist() != ties[1].tolist()
    exclude = relevant[:1]
    top = cold_start.top_columns(np.ones((1, relevant.shape[1])), 4, seed=0, exclude=exclude)
    assert set(top[0][top[0] >= 0].tolist()).isdisjoint(exclude.indices.tolist())


def test_a_missing_peer_library_is_reported_in_one_line(
    cold_start: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    absent = cold_start.Contender(cold_start.random_scores, library="no_such_peer_library")
    kept = cold_start.chosen({"peer": absent, "random": cold_start.Contender(
        cold_start.random_scores)}, None)
    assert list(kept) == ["random"]
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "no_such_peer_library is not installed" in lines[0]


def test_only_picks_the_contenders_matching_any_of_its_parts(cold_start: ModuleType) -> None:
    contenders = {name: cold_start.Contender(cold_start.random_scores)
                  for name in ("LightFM WARP (features only)", "latentrec softmax (features only)",
                               "latentrec WARP (features only, tuned)", "random")}
    kept = cold_start.chosen(contenders, ["softmax", "WARP (features only)"])
    assert list(kept) == ["LightFM WARP (features only)", "latentrec softmax (features only)"]
    with pytest.raises(SystemExit, match="--only 'nothing here' matches none"):
        cold_start.chosen(contenders, ["nothing here"])
    with pytest.raises(SystemExit, match="an empty name part would match every contender"):
        cold_start.chosen(contenders, ["softmax", " "])
