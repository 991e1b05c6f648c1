"""Request and response bodies of the HTTP API (the CLI's JSON shapes)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    model_validator,
)

#: a raw id is a JSON integer or string; nothing is coerced (true is not the id 1)
RawId = StrictInt | StrictStr


def _json_number(value: Any) -> Any:
    # JSON Schema's numbers include 70.0 for an integer but never true or "70"
    if isinstance(value, (bool, str)):
        raise ValueError("must be a JSON number")
    return value


#: an integer as JSON Schema means it: 70 and 70.0, but not true or "70"
Count = Annotated[int, BeforeValidator(_json_number)]
#: a finite number (Python's JSON reader accepts NaN, Infinity and 1e999; these are refused)
Number = Annotated[float, BeforeValidator(_json_number), Field(allow_inf_nan=False)]


#: one value of a feature: text, a number or a boolean
FeatureScalar = StrictStr | StrictInt | Number | StrictBool
#: a feature's value(s) for one id: one value, a list of values (a multi-valued feature), or
#: tags with their weights
FeatureValue = FeatureScalar | list[FeatureScalar] | dict[StrictStr, Number]
#: feature name -> value(s), read with the model's vocabulary
FeatureMap = Annotated[dict[StrictStr, FeatureValue], Field(
    min_length=1,
    description="Feature name → value, or list of values for a multi-valued feature (tags: "
                "a list, or an object of tag → weight). The names are the model's (`GET "
                "/v1/model` lists them); values the model never saw in training are left out "
                "and named in `warnings`.")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScoredItem(BaseModel):
    item: RawId
    score: float


class Recommendation(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"user": 196, "items": [{"item": 242, "score": 4.61}, {"item": 302, "score": 4.55}],
         "fallback": False}]})

    user: RawId | None = Field(description="null: the anonymous user of the request.")
    items: list[ScoredItem]
    fallback: bool = Field(False, description="An unknown user answered with the most popular "
                                              "items (scores are interaction counts).")


class RecommendationBatch(BaseModel):
    recommendations: list[Recommendation]
    warnings: list[str] | None = Field(None, description="Present when an anonymous user's "
                                                         "feature values were left out "
                                                         "(unknown to the model).")


class Interaction(_Strict):
    item: RawId
    rating: Number | None = Field(None, description="Rating (within the model's rating range) "
                                                   "or weight (positive). Left out, it counts "
                                                   "as the training mean rating (explicit "
                                                   "models) or 1 (implicit models).")


class _AnonymousUser(_Strict):
    """A user the model does not know, described by interactions, features, or both."""

    interactions: list[Interaction] | None = Field(
        None, min_length=1, description="The user's items, each once.")
    features: FeatureMap | None = Field(
        None, description="The user's features, for a model trained with user features. "
                          "Alone, they give the user's vector; with `interactions`, the fold-in "
                          "is drawn towards it.")


class RecommendationRequest(_AnonymousUser):
    """Known users by their ids (``users``), or instead one user the model does not know
    (anonymous), described by ``interactions``, ``features`` (models trained with user
    features), or both."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"users": [196, 186], "k": 5, "exclude_seen": True, "exclude": [50]},
        {"interactions": [{"item": 50, "rating": 5}, {"item": 181, "rating": 4}], "k": 5},
        {"features": {"occupation": "writer", "age": 31}, "k": 5}]})

    users: list[RawId] | None = Field(None, min_length=1, description="Raw user ids.")
    k: Count = Field(10, ge=1, description="Items per user.")
    exclude_seen: StrictBool = True
    items: list[RawId] | None = Field(None, description="Allow-list: only these items.")
    exclude: list[RawId] | None = Field(None, description="Deny-list: never these items.")
    fallback: StrictBool = Field(False, description="Unknown users get the most popular items "
                                                    "(marked) instead of a 404.")

    @model_validator(mode="after")
    def _known_or_anonymous(self) -> RecommendationRequest:
        anonymous = self.interactions is not None or self.features is not None
        if self.users is None and not anonymous:
            raise ValueError("give users, or an anonymous user's interactions, features or both")
        if self.users is not None and anonymous:
            raise ValueError("give users or an anonymous user's interactions and features, "
                             "not both")
        if anonymous and (self.items is not None or self.exclude is not None or self.fallback):
            raise ValueError("items, exclude and fallback are for users given by id")
        return self


class Similar(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"item": 50, "items": [{"item": 181, "score": 0.83}]}]})

    item: RawId
    items: list[ScoredItem]


class Pair(_Strict):
    user: RawId
    item: RawId


class PredictRequest(_Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"pairs": [{"user": 196, "item": 242}, {"user": 186, "item": 302}]}]})

    pairs: list[Pair] = Field(min_length=1)
    fallback: StrictBool = Field(False, description="Predict unknown ids with the fallback.")


class Prediction(BaseModel):
    user: RawId
    item: RawId
    prediction: float
    fallback: bool = Field(False, description="The user or the item is unknown: predicted by "
                                              "the fallback.")


class PredictResponse(BaseModel):
    predictions: list[Prediction]


class FoldInRequest(_AnonymousUser):
    """``POST /v1/recommendations``'s anonymous user in the endpoint's first spelling."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"interactions": [{"item": 50, "rating": 5}, {"item": 181, "rating": 4}], "k": 5},
        {"features": {"occupation": "writer", "age": 31}, "k": 5}]})

    k: Count = Field(10, ge=1)
    exclude_seen: StrictBool = True

    @model_validator(mode="after")
    def _something_known(self) -> FoldInRequest:
        if self.interactions is None and self.features is None:
            raise ValueError("give interactions, features, or both")
        return self


class FoldInResponse(BaseModel):
    items: list[ScoredItem]
    warnings: list[str] | None = Field(None, description="Present when feature values were "
                                                         "left out (unknown to the model).")


class NewItem(_Strict):
    item: RawId = Field(description="A raw id the model does not have yet.")
    features: FeatureMap


class AddItemsRequest(_Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"items": [{"item": 1683, "features": {"genre": ["Comedy", "Romance"], "year": 1998}}]}]})

    items: list[NewItem] = Field(min_length=1, description="Each item once.")


class ReloadRequest(_Strict):
    model_dir: str = Field(description="A model directory on the server's disk.")


class WorkerInfo(BaseModel):
    pid: int
    version: int | None = Field(description="None: this worker serves no model (503).")
    sha256: str | None


class ModelInfo(BaseModel):
    kind: str
    config: dict[str, Any]
    feedback: str
    users: int
    items: int
    model_dir: str | None
    library_version: str
    loaded_at: str
    version: int = Field(description="1 at start, higher after every reload.")
    sha256: str | None = Field(description="First 12 hex digits of the SHA-256 of model.json "
                                           "(None for a model given in memory).")
    pid: int = Field(description="The worker process that answered.")
    workers: list[WorkerInfo] = Field(description="Every worker of the service and the model "
                                                  "it serves.")
    features: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="The side features the model learned from: side "
                                          "(`users`, `items`) → feature name → kind.")


class ItemsAdded(ModelInfo):
    added: list[RawId] = Field(description="The new items, as the model spells them.")
    warnings: list[str] | None = Field(None, description="Present when feature values were "
                                                         "left out (unknown to the model).")


class Health(BaseModel):
    status: str
    model: str
    items: int
    version: int
    sha256: str | None
    pid: int


class ErrorBody(BaseModel):
    detail: str
