"""Request and response bodies of the HTTP API (the CLI's JSON shapes)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, StrictStr

#: a raw id is a JSON integer or string; nothing is coerced (true is not the id 1)
RawId = StrictInt | StrictStr


def _json_number(value: Any) -> Any:
    # JSON Schema's numbers include 70.0 for an integer but never true or "70"
    if isinstance(value, (bool, str)):
        raise ValueError("must be a JSON number")
    return value


#: an integer as JSON Schema means it: 70 and 70.0, but not true or "70"
Count = Annotated[int, BeforeValidator(_json_number)]
Number = Annotated[float, BeforeValidator(_json_number)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScoredItem(BaseModel):
    item: RawId
    score: float


class Recommendation(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"user": 196, "items": [{"item": 242, "score": 4.61}, {"item": 302, "score": 4.55}]}]})

    user: RawId
    items: list[ScoredItem]


class RecommendationBatch(BaseModel):
    recommendations: list[Recommendation]


class RecommendationRequest(_Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"users": [196, 186], "k": 5, "exclude_seen": True, "exclude": [50]}]})

    users: list[RawId] = Field(min_length=1, description="Raw user ids.")
    k: Count = Field(10, ge=1, description="Items per user.")
    exclude_seen: StrictBool = True
    items: list[RawId] | None = Field(None, description="Allow-list: only these items.")
    exclude: list[RawId] | None = Field(None, description="Deny-list: never these items.")


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


class PredictResponse(BaseModel):
    predictions: list[Prediction]


class Interaction(_Strict):
    item: RawId
    rating: Number | None = Field(None, description="Rating or weight. Left out, it counts as "
                                                   "the training mean rating (explicit models) "
                                                   "or 1 (implicit models).")


class FoldInRequest(_Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"interactions": [{"item": 50, "rating": 5}, {"item": 181, "rating": 4}], "k": 5}]})

    interactions: list[Interaction] = Field(min_length=1)
    k: Count = Field(10, ge=1)
    exclude_seen: StrictBool = True


class FoldInResponse(BaseModel):
    items: list[ScoredItem]


class ReloadRequest(_Strict):
    model_dir: str = Field(description="A model directory on the server's disk.")


class ModelInfo(BaseModel):
    kind: str
    config: dict[str, Any]
    feedback: str
    users: int
    items: int
    model_dir: str | None
    library_version: str
    loaded_at: str


class Health(BaseModel):
    status: str
    model: str
    items: int


class ErrorBody(BaseModel):
    detail: str
