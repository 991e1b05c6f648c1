"""latentrec.spark: distributed training from a Spark DataFrame, on a real local Spark."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from latentrec import ImplicitALS, ItemKNN
from latentrec.datasets import synthetic
from latentrec.errors import DataError, InvalidParameterError
from latentrec.training.sharded import fit_sharded

# TorchDistributor leaves the pipe of its launcher process to the garbage collector (pyspark 4.3)
pytestmark = [pytest.mark.distributed, pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
              pytest.mark.filterwarnings("ignore::ResourceWarning")]


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    pyspark = pytest.importorskip("pyspark.sql") if os.environ.get("CI") != "true" else None
    if shutil.which("java") is None:
        message = "no Java runtime for Spark"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from pyspark.sql import SparkSession

    del pyspark
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    session = (SparkSession.builder.master("local[2]").appName("latentrec-tests")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.driver.host", "127.0.0.1")
               .config("spark.driver.bindAddress", "127.0.0.1")
               .config("spark.sql.shuffle.partitions", "4")
               .config("spark.log.level", "ERROR").getOrCreate())
    yield session
    session.stop()


def test_training_from_a_dataframe_gives_the_model_of_torchrun(spark: Any,
                                                             tmp_path: Path) -> None:
    frame = synthetic(300, 150, feedback="implicit", seed=7).to_frame()
    frame["weight"] = 1.0
    rows = list(frame[["user", "item", "weight"]].itertuples(index=False, name=None))
    df = spark.createDataFrame(rows, ["user", "item", "weight"]).repartition(3)
    from latentrec.spark import train

    model = train(df, ImplicitALS(factors=6, epochs=3), num_processes=2, value_col="weight",
                  feedback="implicit")
    frame.to_csv(tmp_path / "all.csv", index=False)
    single = fit_sharded(ImplicitALS(factors=6, epochs=3), tmp_path, feedback="implicit",
                         show_progress=False)
    assert model.users_ == single.users_ and model.items_ == single.items_
    difference = (model.item_factors_ - single.item_factors_).norm()
    assert float(difference / single.item_factors_.norm()) < 1e-4
    assert torch.equal(torch.from_numpy(model.seen_.toarray()),
                       torch.from_numpy(single.seen_.toarray()))


def test_a_bad_value_is_one_line_on_the_driver(spark: Any) -> None:
    from latentrec.spark import train

    df = spark.createDataFrame([(1, 1, 4.0), (2, 1, float("nan"))], ["user", "item", "rating"])
    with pytest.raises(DataError, match=r"^DataFrame part part-\d+-.*\.parquet:1: column "
                                        r"'rating': value is missing$"):
        train(df, ImplicitALS(factors=2, epochs=1), num_processes=2, feedback="implicit")


def test_arguments_are_checked_before_spark_runs(spark: Any) -> None:
    from latentrec.spark import train

    df = spark.createDataFrame([(1, 1, 4.0)], ["u", "i", "r"])
    with pytest.raises(DataError, match="the DataFrame has no column 'user'; its columns: u"):
        train(df, ImplicitALS())
    with pytest.raises(InvalidParameterError, match="ItemKNN does not train distributed"):
        train(df, ItemKNN(), user_col="u", item_col="i", value_col="r")
