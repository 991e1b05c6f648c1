"""Benchmark suites: latentrec and peer libraries on the same data, split and metric code.

``run_suite("explicit")`` (MovieLens 100K u1, RMSE/MAE) and ``run_suite("implicit")``
(per-user 80/20 split, NDCG@k and friends) fit each contender (latentrec's models, and
Surprise, implicit, LightFM, cornac, LIBMF and Spark MLlib where importable: ``pip install
'latentrec[bench]'``; Spark also needs Java) in its own process, so its fit time and peak
memory are its own, and score every contender's answers with the same code.
``write_results`` writes the JSON and a PNG of fit time against quality; the CLI is
``latentrec bench``.

Importing this package is cheap: data reading, models and peers load when a suite runs.

Examples
--------
>>> from latentrec.bench import SUITE_DATASETS
>>> SUITE_DATASETS["implicit"]
('ml-100k', 'lastfm', 'gowalla')
"""

from latentrec.bench._data import (
    find_datasets_dir,
    load_split,
    relevant_matrix,
    score_ratings,
    score_top_k,
)
from latentrec.bench._harness import describe_machine, run_suite
from latentrec.bench._report import WrittenFiles, markdown_table, write_results
from latentrec.bench._results import ContenderResult, SkippedContender, SuiteResult
from latentrec.bench._suites import SUITE_DATASETS, TUNED_IMPLICIT, Contender, contenders_for

__all__ = [
    "SUITE_DATASETS",
    "TUNED_IMPLICIT",
    "Contender",
    "ContenderResult",
    "SkippedContender",
    "SuiteResult",
    "WrittenFiles",
    "contenders_for",
    "describe_machine",
    "find_datasets_dir",
    "load_split",
    "markdown_table",
    "relevant_matrix",
    "run_suite",
    "score_ratings",
    "score_top_k",
    "write_results",
]
