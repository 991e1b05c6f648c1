"""The side-features seam of the model layer, on a model defined here: what ``fit`` does with
feature tables, cold ids, ``add_items``/``add_users``, feature vectors of new users and the
refusals. The hybrid models themselves (BPR, ImplicitALS, ...) are tested in their own files."""

from __future__ import annotations

import math
import warnings
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
import torch

from latentrec import ALS, Interactions, read_features
from latentrec.errors import DataWarning, InvalidParameterError
from latentrec.models._solvers import SparseRows
from latentrec.models.als import _ExplicitALSTrainable
from latentrec.models.factor import hybrid_table
from latentrec.training import Trainable


class _FeatureTrainable(_ExplicitALSTrainable):
    """ALS whose published vectors add fixed feature embeddings: enough to exercise the seam."""

    def publish(self) -> None:
        super().publish()
        model = self.model
        tables = {"users": model.user_factors_, "items": model.item_factors_}
        biases = {"users": model.user_bias_, "items": model.item_bias_}
        learned = {}
        for side in ("users", "items"):
            matrix = model._feature_matrix(side)
            if matrix is None:
                continue
            generator = torch.Generator().manual_seed(len(side))
            embeddings = torch.randn(matrix.shape[1], model.config.factors, generator=generator)
            bias = torch.arange(matrix.shape[1], dtype=torch.float32) / 10
            tables[side] = hybrid_table(tables[side], matrix, embeddings)
            biases[side] = hybrid_table(biases[side][:, None], matrix, bias[:, None]).reshape(-1)
            learned[side] = (embeddings, bias)
        model._set_factors(tables["users"], tables["items"], biases["users"], biases["items"],
                           model.global_mean_)
        for side, (embeddings, bias) in learned.items():  # after _set_factors, which clears
            model._set_feature_factors(side, embeddings, bias)


class FeatureALS(ALS):
    feature_sides: ClassVar[tuple[Any, ...]] = ("users", "items")

    def _trainable(self, data: Interactions) -> Trainable:
        return _FeatureTrainable(self, data)


@pytest.fixture
def ratings() -> Interactions:
    return Interactions.from_arrays(["a", "a", "b", "c", "c"], ["x", "y", "x", "z", "y"],
                                    [5.0, 3.0, 4.0, 2.0, 1.0])


@pytest.fixture
def item_features() -> Any:
    table = pd.DataFrame({"item": ["x", "y", "z", "w"], "genre": ["A|B", "B", "C", "A"]})
    return read_features(table, "item")


def _fit(data: Interactions, **features: Any) -> FeatureALS:
    return FeatureALS(factors=3, epochs=2).fit(data, show_progress=False, **features)


def test_items_with_features_and_no_interactions_join_the_model(ratings, item_features):
    model = _fit(ratings, item_features=item_features)
    assert model.items_.to_list() == ["x", "y", "z", "w"]
    assert model.seen_.shape == (3, 4) and model.seen_[:, 3].nnz == 0
    assert model.item_popularity_[3] == 0
    embeddings = model.feature_factors_["items"]
    a = model.features_["items"].columns()
    genre_a = int(np.flatnonzero(a["value"].to_numpy() == "A")[0])
    # the cold item's vector and bias are exactly its one genre's embedding and bias
    torch.testing.assert_close(model.item_factors_[3], embeddings[genre_a])
    assert model.item_bias_ is not None
    assert float(model.item_bias_[3]) == pytest.approx(genre_a / 10)
    assert "w" in set(model.recommend("a", k=4)["item"])
    assert np.isfinite(model.predict("a", "w"))
    assert set(model.similar_items("w", k=3)["similar_item"]) == {"x", "y", "z"}


def test_a_model_without_features_refuses_them_in_one_line(ratings, item_features):
    with pytest.raises(InvalidParameterError, match="item_features: ALS does not learn from "
                                                    "item features; models that do:") as error:
        ALS(epochs=1).fit(ratings, item_features=item_features, show_progress=False)
    assert "\n" not in str(error.value)


def test_features_fitted_with_identity_columns_are_refused(ratings, item_features):
    fitted = item_features.fit(["x", "y", "z"], identity=True)
    with pytest.raises(InvalidParameterError, match="identity"):
        _fit(ratings, item_features=fitted)


def test_features_must_be_a_features_table(ratings):
    with pytest.raises(TypeError, match="item_features must be Features"):
        _fit(ratings, item_features=pd.DataFrame({"item": ["x"]}))


def test_add_items_scores_new_items_by_their_features_and_refuses_known_ones(
        ratings, item_features):
    model = _fit(ratings, item_features=item_features)
    new = read_features(pd.DataFrame({"item": ["v"], "genre": ["A|C"]}), "item")
    model.add_items(new)
    assert model.items_.to_list()[-1] == "v"
    expected, _ = model.feature_vectors("items", {"genre": ["A", "C"]})
    torch.testing.assert_close(model.item_factors_[-1], expected[0])
    with pytest.raises(InvalidParameterError, match=r"items already in the model: \['v'\]"):
        model.add_items(new)
    assert len(model.items_) == 5


def test_add_users_needs_a_model_trained_with_user_features(ratings, item_features):
    model = _fit(ratings, item_features=item_features)
    users = read_features(pd.DataFrame({"user": ["d"], "age": [30]}), "user")
    with pytest.raises(InvalidParameterError, match="trained without user features"):
        model.add_users(users)


def test_unknown_values_of_new_items_are_ignored_with_a_counted_warning(
        ratings, item_features):
    model = _fit(ratings, item_features=item_features)
    with pytest.warns(DataWarning, match="1 unknown value"):
        model.add_items(read_features(pd.DataFrame({"item": ["v"], "genre": ["A|Q"]}), "item"))


def test_a_new_user_by_features_alone_and_with_interactions(ratings):
    users = read_features(pd.DataFrame({"user": ["a", "b", "c"], "job": ["x", "y", "x"]}),
                          "user")
    model = _fit(ratings, user_features=users)
    by_features = model.recommend_new_user(features={"job": "x"}, k=3, exclude_seen=False)
    vector, bias = model.feature_vectors("users", {"job": "x"})
    assert bias is not None
    expected = model._score_vectors(vector, bias)[0]
    top = torch.topk(expected, 3).indices.numpy()
    assert by_features["item"].tolist() == model.items_.ids_of(top).tolist()
    # with interactions, fold-in is drawn towards the features' vector: with an overwhelming
    # penalty it is that vector, with none it is the plain fold-in
    rows = SparseRows.from_csr(model._interaction_rows(
        model.items_.index_of(["x"]), np.array([5.0]), np.zeros(1, int), 1))
    huge = torch.full((1, 4), 1e9)
    drawn, drawn_bias = model._fold_in_biased(rows, huge, (vector, bias))
    torch.testing.assert_close(drawn, vector, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(drawn_bias, bias, rtol=1e-4, atol=1e-4)
    plain = model.recommend_new_user(["x"], [5.0], k=2)
    both = model.recommend_new_user(["x"], [5.0], k=2, features={"job": "x"})
    assert len(plain) == len(both) == 2


def test_a_new_user_needs_items_or_features(ratings, item_features):
    model = _fit(ratings, item_features=item_features)
    with pytest.raises(InvalidParameterError, match="at least one item, or the user's features"):
        model.recommend_new_user([])
    with pytest.raises(InvalidParameterError, match="trained without user features"):
        model.recommend_new_user(features={"job": "x"})


def test_feature_embeddings_are_indexed_by_feature_and_value(ratings, item_features):
    model = _fit(ratings, item_features=item_features)
    frame = model.factors("items", features=True)
    assert list(frame.index.names) == ["feature", "value"]
    assert frame.index.get_level_values("value").tolist() == ["A", "B", "C"]
    assert list(frame.columns) == ["f0", "f1", "f2", "bias"]
    assert model.factors("items").shape == (4, 4)


def test_identity_false_without_features_is_refused(ratings):
    class NoIdentity(FeatureALS):
        def __init__(self, **params: Any) -> None:
            super().__init__(**params)
            object.__setattr__(self.config, "identity", False)

    with pytest.raises(InvalidParameterError, match=r"identity=False\) represents ids by their "
                                                    r"features alone"):
        NoIdentity(epochs=1).fit(ratings, show_progress=False)


def test_an_integer_id_model_refuses_new_ids_that_are_not_integers(item_features):
    data = Interactions.from_arrays([1, 2], [1, 2], [4.0, 3.0])
    table = pd.DataFrame({"item": ["1", "01", "2"], "genre": ["A", "B", "A"]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        with pytest.raises(InvalidParameterError, match="this model's items ids are "
                                                        "integers, got '01'"):
            _fit(data, item_features=read_features(table, "item"))
        model = _fit(data, item_features=read_features(table.iloc[[0, 2]], "item"))
    assert model.items_.is_integer
    new = read_features(pd.DataFrame({"item": ["7", "007"], "genre": ["A", "A"]}), "item")
    with pytest.raises(InvalidParameterError, match="got '007'"):
        model.add_items(new)
    model.add_items(read_features(pd.DataFrame({"item": ["7"], "genre": ["A"]}), "item"))
    assert model.items_.to_list() == [1, 2, 7]


def test_numbers_far_outside_the_training_range_are_refused_and_nothing_changes(ratings):
    items = read_features(pd.DataFrame({"item": ["x", "y", "z"], "year": [1990, 2000, 1995]}),
                          "item")
    model = _fit(ratings, item_features=items)
    for year in (1e300, 1e30):
        new = read_features(pd.DataFrame({"item": ["v"], "year": [year]}), "item")
        with pytest.raises(InvalidParameterError, match="far outside what training saw"):
            model.add_items(new)
    assert model.items_.to_list() == ["x", "y", "z"]
    assert torch.isfinite(model.item_factors_).all()


def test_a_category_spelled_as_a_number_is_read_as_the_category(ratings):
    users = read_features(pd.DataFrame({"user": ["a", "b", "c"],
                                        "zip": ["55101", "T8H1N", "55102"]}), "user")
    model = _fit(ratings, user_features=users)
    assert model.features_["users"].kinds == {"zip": "categorical"}
    vector, _ = model.feature_vectors("users", {"zip": "55101"})
    also, _ = model.feature_vectors("users", {"zip": 55101})
    torch.testing.assert_close(vector, also)
    assert bool(vector.abs().sum() > 0)
    model.add_users(read_features(pd.DataFrame({"user": ["d"], "zip": [55102]}), "user"))
    assert model.users_.to_list()[-1] == "d"


def test_features_the_model_does_not_know_warn_that_the_vector_is_zero(ratings):
    users = read_features(pd.DataFrame({"user": ["a", "b", "c"], "job": ["x", "y", "x"]}),
                          "user")
    model = _fit(ratings, user_features=users)
    with pytest.warns(DataWarning, match="no feature value the model knows"):
        vector, _ = model.feature_vectors("users", {"job": None})
    assert float(vector.abs().sum()) == 0.0


def test_update_users_draws_a_user_with_features_towards_them_after_a_reload_too(tmp_path):
    from latentrec import ImplicitALS, load

    data = Interactions.from_arrays(["a", "a", "b", "c", "c"], ["x", "y", "x", "z", "y"])
    users = read_features(pd.DataFrame({"user": ["a", "b", "c"], "job": ["x", "y", "x"]}),
                          "user")
    model = ImplicitALS(factors=3, epochs=2).fit(data, user_features=users,
                                                 show_progress=False)
    again = load(model.save(tmp_path / "model"))
    new = Interactions.from_arrays(["a"], ["z"])
    model.update_users(new)
    again.update_users(new)
    torch.testing.assert_close(model.user_factors_, again.user_factors_)
    plain, _ = model._fold_in(SparseRows.from_csr(model.seen_[[0]]))
    assert not torch.allclose(model.user_factors_[0], plain[0])


def test_a_checkpoint_of_a_run_with_features_does_not_resume_one_without(ratings, item_features,
                                                                         tmp_path):
    from latentrec.training import Checkpoint, Trainer

    def quiet(**options: Any) -> Trainer:
        return Trainer(show_progress=False, **options)

    FeatureALS(factors=3, epochs=2).fit(ratings, item_features=item_features, trainer=quiet(
        checkpoint=Checkpoint(tmp_path / "run", every=1)))
    with pytest.raises(InvalidParameterError, match="another run"):
        FeatureALS(factors=3, epochs=2).fit(ratings, trainer=quiet(resume=tmp_path / "run"))


def test_a_categorical_or_numeric_feature_of_a_new_user_takes_one_value(ratings):
    users = read_features(pd.DataFrame({"user": ["a", "b", "c"], "job": ["x", "y", "x"],
                                        "age": [20, 30, 40]}), "user")
    model = _fit(ratings, user_features=users)
    with pytest.raises(InvalidParameterError, match=r"^features.job: 'job' is a categorical "
                                                    r"feature: give one value, got 2$"):
        model.feature_vectors("users", {"job": ["x", "y"]})
    with pytest.raises(InvalidParameterError, match=r"^features.job: weights are for tags"):
        model.feature_vectors("users", {"job": {"x": 1.0}})
    for value in ([30], "30", True):
        with pytest.raises(InvalidParameterError, match=r"^features.age: must be a number"):
            model.recommend_new_user(features={"age": value})
    with pytest.raises(InvalidParameterError, match=r"^features.colour: the model has no user "
                                                    r"feature 'colour'; its user features: age, "
                                                    r"job$"):
        model.feature_vectors("users", {"colour": "red"})
    for value in (math.nan, math.inf, 10**400):  # never read as a missing value
        with pytest.raises(InvalidParameterError, match=r"^features.age: must be a finite "
                                                        r"number, got .{3,45} \(leave a "):
            model.feature_vectors("users", {"age": value})
    # one value in a list is that value
    assert torch.equal(model.feature_vectors("users", {"job": ["y"]})[0],
                       model.feature_vectors("users", {"job": "y"})[0])
