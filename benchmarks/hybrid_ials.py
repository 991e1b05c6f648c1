"""Hybrid ImplicitALS (issue 12): plain tuned iALS and iALS with item features, side by side.

    python benchmarks/hybrid_ials.py tags  [--seeds 0 1 2] [--data-dir ../shared/datasets]
    python benchmarks/hybrid_ials.py items [--seeds 0 1 2]
    python benchmarks/hybrid_ials.py tags --hybrid '{"feature_reg": 3.0}'   (skip the grid)
    python benchmarks/hybrid_ials.py tags --tag-weights tfidf --min-tag-artists 5
    python benchmarks/hybrid_ials.py tags --threads 1 --timing-repeats 6   (more timed pairs)
    python benchmarks/hybrid_ials.py tags --threads 1 --timing-repeats 6 --tag-weights sqrt \
        --tag-shrink 0 10                        (the best recipe: shrunken sqrt-count rows)

``tags``: warm top-10 on HetRec Last.fm with the artists' tags (``load_lastfm_tags``,
``user_taggedartists``) as item features, on ``latentrec bench implicit --dataset lastfm``'s
split and scorer, the ones ``benchmarks/cold_start.py tags`` uses (per user 80/20, seed 42,
play counts as weights; every training artist ranked for every test user, the user's
training artists excluded; ``score_top_k``). Plain iALS has the bench's tuned settings
(``TUNED_IMPLICIT["lastfm"]["ials"]``: 64 factors, NDCG@10 0.2469); the hybrid keeps all of
them and adds the item features, with its own settings (``factors``, ``feature_reg``,
``reg``: ``TAG_GRID``, crossed with every ``--tag-shrink``) chosen on a validation split carved
from the training part only (``user_holdout(train, 0.2, seed=1042)``) by validation NDCG@10,
then refitted on the whole training part. The tag vocabulary is fitted on the training artists
of the split it is used with. ``--seeds`` are the models' seeds (the split is the bench's).

An artist's tag row: each tag weighed by ``--tag-weights`` (by default the number of users who
gave it), then divided by the row's sum plus ``--tag-shrink`` (0: the row sums to 1, as
``normalize="group"``). A positive shrink shortens the rows of artists that few users tagged,
whose tags say little, so their vectors lean less on the tags: with square-root counts and a
shrink of 10, validation NDCG@10 rose from 0.2045 to 0.2066 (two model seeds), and the hybrid
then wants a larger ``reg`` (18 rather than 12: the penalty draws an artist towards its tags'
vector, not towards zero).

``items``: cold-start items on MovieLens 100K, ``benchmarks/cold_start.py items``'s split
(``cold_item_split``: 20% of the items held out entirely, per seed), features, scorer and
validation (a split carved from each seed's training part with seed + 1000); every held-out
item is known to the hybrid by its ``u.item`` features alone. LightFM WARP (features only)
scores NDCG@10 0.2726 there (same script, ``cold_start.py items``).

Fit times are wall times of the fit alone, plain and hybrid fits alternating, after an untimed
warm-up fit of each that compiles the numba kernels; the ratio is the median over the pairs
(one per seed plus ``--timing-repeats``). Results go to
benchmarks/results/hybrid_ials_<task>.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import datasets_dir, machine, markdown_table, save
from cold_start import (
    COLD_FRACTION,
    NDCG_K,
    RECALL_K,
    VALIDATION_SEED_OFFSET,
    cold_item_split,
    cold_task,
    grid,
    load_ml100k,
    say,
    score_cold,
    show_once,
    top_columns,
)

from latentrec import ImplicitALS
from latentrec.data import Features, Interactions

#: the validation split of the tags task is carved from the training part with this seed
TAGS_VALIDATION_SEED = 1042

#: hybrid settings tried on validation (on top of the plain model's), each with every
#: ``--tag-shrink``; a small grid, since a Last.fm fit takes a few seconds. Ties go to the
#: earlier (cheaper) point. Left out after validation runs: feature_reg 1 and
#: feature_cg_steps 3 (never better, 3 steps cost 2.4x the plain fit), reg 25-32 (worse)
TAG_GRID = grid(identity=(True,), factors=(64, 128), reg=(12.0, 18.0), feature_reg=(0.1, 0.3),
                feature_cg_steps=(1,))
#: how an artist's tags are weighed before ``normalize`` (``--tag-weights``): the number of
#: users who gave the tag, its square root, its log, 1, or the count times the tag's inverse
#: document frequency over the training artists (tf-idf)
TAG_WEIGHTS = ("count", "sqrt", "log", "binary", "tfidf")
ITEM_GRID = grid(identity=(True, False), factors=(32, 64), feature_reg=(1.0, 5.0, 20.0))
#: the items task's plain settings: ImplicitALS's defaults at the grid's factors
ITEM_BASE: dict[str, Any] = {}


def tuned_plain() -> dict[str, Any]:
    from latentrec.bench import TUNED_IMPLICIT

    return dict(TUNED_IMPLICIT["lastfm"]["ials"])


def fit(params: Mapping[str, Any], train: Interactions,
        features: Features | None) -> tuple[ImplicitALS, float]:
    model = ImplicitALS(**params)
    started = time.perf_counter()
    model.fit(train, item_features=features, show_progress=False)
    return model, time.perf_counter() - started


def scores_of(model: ImplicitALS, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Scores of raw ``users`` x raw ``items`` (cold items included)."""
    rows = torch.from_numpy(model.users_.index_of(users))
    columns = torch.from_numpy(model.items_.index_of(items))
    return (model.user_factors_[rows] @ model.item_factors_[columns].T).double().numpy()


# ---------------------------------------------------------------------------- tags
def tags_score(model: ImplicitALS, train: Interactions, test: Interactions) -> float:
    from latentrec.bench import relevant_matrix, score_top_k

    rank_users, relevant = relevant_matrix(train, test)
    scores = scores_of(model, train.users.ids_of(rank_users), train.items.to_numpy())
    top = top_columns(scores, 10, 0, exclude=train.to_csr()[rank_users])
    return score_top_k(top, relevant, train.n_items, 10)["ndcg@10"]


@dataclass(frozen=True)
class TagWeighting:
    """How the artists' tags become a design matrix (``--tag-weights``, ``--min-tag-artists``,
    ``--normalize``, ``--tag-shrink``: ``Features.fit``'s ``shrink``, each artist's weights
    divided by their sum plus ``shrink``)."""

    weights: str = "count"
    min_artists: int = 1
    normalize: str = "group"
    shrink: float = 0.0

    def table(self, tags: Features, trained: Interactions) -> Features:
        """The tag table reweighed on the artists of ``trained``, fitted on them."""
        options: dict[str, Any] = {"normalize": self.normalize, "shrink": self.shrink}
        if self.weights == "count" and self.min_artists <= 1:
            return tags.fit(trained.items, **options)
        counts = tags.fit(normalize="none")
        ids = tags.ids.to_numpy()
        matrix = counts.matrix(ids).tocoo()
        names = counts.columns()["value"].to_numpy()
        in_training = np.isin(ids, trained.items.to_numpy())
        artists = np.bincount(matrix.col[in_training[matrix.row]], minlength=len(names))
        idf = np.log((1 + in_training.sum()) / (1 + artists[matrix.col]))
        weight = {"count": matrix.data, "sqrt": np.sqrt(matrix.data),
                  "log": np.log1p(matrix.data), "binary": np.ones_like(matrix.data),
                  "tfidf": matrix.data * idf}[self.weights]
        keep = (artists[matrix.col] >= self.min_artists) & (weight > 0)
        table = Features.from_pairs(ids[matrix.row[keep]], names[matrix.col[keep]], weight[keep],
                                    feature="tag", kind="tags")
        return table.fit(trained.items, **options)


def with_shrink(point: Mapping[str, Any],
                weighting: TagWeighting) -> tuple[dict[str, Any], TagWeighting]:
    """A hybrid point's model settings and tag weighting (its ``tag_shrink``, if any)."""
    params = dict(point)
    shrink = params.pop("tag_shrink", None)
    if shrink is None:
        return params, weighting
    return params, dataclasses.replace(weighting, shrink=float(shrink))


def run_tags(root: Path, seeds: Sequence[int], fixed: dict[str, Any] | None,
             weighting: TagWeighting, shrinks: Sequence[float],
             timing_repeats: int) -> dict[str, Any]:
    from latentrec.bench import load_split
    from latentrec.data import user_holdout
    from latentrec.datasets import load_lastfm_tags

    train, test = load_split("implicit", "lastfm", root)
    tags = load_lastfm_tags(root / "lastfm-hetrec")
    plain = tuned_plain()
    say(f"Last.fm: {len(train):,} train / {len(test):,} test interactions; plain {plain}; "
        f"tags {weighting}")
    tried: list[dict[str, Any]] = []
    if fixed is None:
        inner = user_holdout(train, 0.2, seed=TAGS_VALIDATION_SEED)
        inner_tags = {shrink: dataclasses.replace(weighting, shrink=shrink).table(
            tags, inner.train) for shrink in shrinks}
        fit(plain, inner.train, inner_tags[shrinks[0]])  # warm-up: numba compiles
        for point in ({**at, "tag_shrink": shrink} for shrink in shrinks for at in TAG_GRID):
            model, fit_s = fit({**plain, **with_shrink(point, weighting)[0]}, inner.train,
                               inner_tags[point["tag_shrink"]])
            ndcg = tags_score(model, inner.train, inner.test)
            tried.append({"params": point, "valid_ndcg@10": ndcg, "fit_s": fit_s})
            say(f"  validation {point}: NDCG@10 {ndcg:.4f}  fit {fit_s:.2f} s")
        model, _ = fit(plain, inner.train, None)
        plain_valid = tags_score(model, inner.train, inner.test)
        say(f"  validation plain: NDCG@10 {plain_valid:.4f}")
        tried.append({"params": "plain", "valid_ndcg@10": plain_valid})
        fixed = max((row for row in tried if row["params"] != "plain"),
                    key=lambda row: row["valid_ndcg@10"])["params"]
    chosen, weighting = with_shrink(fixed, weighting)
    hybrid = {**plain, **chosen}
    train_tags = weighting.table(tags, train)
    fit(plain, train.take(train.user_index < 40), None)  # warm-up: numba compiles
    fit(hybrid, train.take(train.user_index < 40), train_tags)
    runs = []
    for seed in seeds:
        for name, params, features in (("plain", plain, None), ("hybrid", hybrid, train_tags)):
            model, fit_s = fit({**params, "seed": seed}, train, features)
            ndcg = tags_score(model, train, test)
            runs.append({"seed": seed, "model": name, "params": params, "fit_s": fit_s,
                         "ndcg@10": ndcg})
            say(f"seed {seed} {name}: NDCG@10 {ndcg:.4f}  fit {fit_s:.2f} s")
    # the fit-time ratio compares fits at the same factors: the plain rows above when the
    # hybrid kept the tuned factors, else only the timed pairs below
    same_factors = {**plain, "factors": hybrid["factors"]}
    timings = [{"plain": run["fit_s"], "hybrid": hybrid_run["fit_s"]}
               for run, hybrid_run in zip(runs[::2], runs[1::2], strict=True)
               if same_factors == plain]
    if not timings:
        timing_repeats = max(timing_repeats, 3)
        fit(same_factors, train.take(train.user_index < 40), None)
    same_factors_ndcg = None
    for _ in range(timing_repeats):  # more alternating fits, timed only
        model, plain_s = fit({**same_factors, "seed": seeds[0]}, train, None)
        if same_factors != plain and same_factors_ndcg is None:
            same_factors_ndcg = tags_score(model, train, test)
            say(f"seed {seeds[0]} plain at the hybrid's factors: NDCG@10 "
                f"{same_factors_ndcg:.4f}")
        timings.append({"plain": plain_s,
                        "hybrid": fit({**hybrid, "seed": seeds[0]}, train, train_tags)[1]})
    return {"runs": runs, "validation": tried, "hybrid": hybrid, "timings": timings,
            "plain_at_hybrid_factors_ndcg@10": same_factors_ndcg,
            "tag_weighting": dataclasses.asdict(weighting)}


# ---------------------------------------------------------------------------- items
def run_items(root: Path, seeds: Sequence[int], fixed: dict[str, Any] | None) -> dict[str, Any]:
    data, features = load_ml100k(root)
    runs, validations = [], []
    for seed in seeds:
        split = cold_item_split(data, COLD_FRACTION, seed)
        task, relevant = cold_task(split, features, seed, 1)
        inner = cold_item_split(split.train, COLD_FRACTION, seed + VALIDATION_SEED_OFFSET)
        valid_task, valid_relevant = cold_task(inner, features, seed, 1)
        chosen = fixed
        if chosen is None:
            tried = []
            for point in ITEM_GRID:
                model, fit_s = fit({**ITEM_BASE, **point, "seed": seed}, valid_task.train,
                                   valid_task.fit_features())
                scores = score_cold(scores_of(model, valid_task.users, valid_task.items),
                                    valid_relevant, seed)
                tried.append({"params": point, "fit_s": fit_s, **scores})
            validations.append({"seed": seed, "tried": tried})
            chosen = max(tried, key=lambda row: row[f"ndcg@{NDCG_K}"])["params"]
        model, fit_s = fit({**ITEM_BASE, **chosen, "seed": seed}, task.train,
                           task.fit_features())
        scores = score_cold(scores_of(model, task.users, task.items), relevant, seed)
        runs.append({"seed": seed, "model": "hybrid", "params": chosen, "fit_s": fit_s,
                     **scores})
        say(f"seed {seed}: NDCG@{NDCG_K} {scores[f'ndcg@{NDCG_K}']:.4f}  Recall@{RECALL_K} "
            f"{scores[f'recall@{RECALL_K}']:.4f}  fit {fit_s:.2f} s  {chosen}")
    return {"runs": runs, "validation": validations}


def summary(runs: list[dict[str, Any]], metrics: Sequence[str]) -> list[dict[str, Any]]:
    rows = []
    for name in dict.fromkeys(run["model"] for run in runs):
        mine = [run for run in runs if run["model"] == name]
        row: dict[str, Any] = {"model": name, "seeds": len(mine)}
        for metric in metrics:
            values = [run[metric] for run in mine]
            row[metric] = (f"{statistics.fmean(values):.4f} ± "
                           f"{statistics.stdev(values) if len(values) > 1 else 0.0:.4f} "
                           f"[{min(values):.4f}-{max(values):.4f}]")
        row["fit s (median)"] = statistics.median(run["fit_s"] for run in mine)
        shown = [run["params"] for run in mine]
        row["params"] = shown[0] if all(p == shown[0] for p in shown) else "; ".join(
            f"seed {run['seed']}: {p}" for run, p in zip(mine, shown, strict=True))
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=("tags", "items"))
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="model seeds (tags) or split seeds (items)")
    parser.add_argument("--threads", type=int, default=2, help="torch's and numba's threads")
    parser.add_argument("--hybrid", default=None, type=json.loads,
                        help="fixed hybrid settings as JSON instead of the validation grid")
    parser.add_argument("--tag-weights", choices=TAG_WEIGHTS, default="count",
                        help="tags: how an artist's tags are weighed (before --normalize)")
    parser.add_argument("--min-tag-artists", type=int, default=1,
                        help="tags: drop tags given to fewer training artists")
    parser.add_argument("--normalize", choices=("group", "row", "none"), default="group",
                        help="tags: Features.fit's normalize")
    parser.add_argument("--tag-shrink", type=float, nargs="+", default=[0.0],
                        help="tags: divide an artist's tag weights by their sum plus this "
                             "instead of --normalize (0: as --normalize); each value is tried "
                             "on validation")
    parser.add_argument("--timing-repeats", type=int, default=0,
                        help="tags: extra alternating plain/hybrid fits, timed only")
    args = parser.parse_args(argv)
    if any(shrink < 0 for shrink in args.tag_shrink) or (
            args.normalize == "none" and any(shrink > 0 for shrink in args.tag_shrink)):
        parser.error("--tag-shrink: values must be >= 0, and 0 with --normalize none")
    warnings.showwarning = show_once(warnings.showwarning)
    torch.set_num_threads(args.threads)
    import numba

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    root = datasets_dir(args.data_dir)
    started, described = time.perf_counter(), machine()
    if args.task == "tags":
        weighting = TagWeighting(args.tag_weights, args.min_tag_artists, args.normalize)
        result = run_tags(root, args.seeds, args.hybrid, weighting, args.tag_shrink,
                          args.timing_repeats)
        metrics = ["ndcg@10"]
    else:
        result = run_items(root, args.seeds, args.hybrid)
        metrics = [f"ndcg@{NDCG_K}", f"recall@{RECALL_K}"]
    rows = summary(result["runs"], metrics)
    if args.task == "tags":
        timings = result["timings"]
        ratio = statistics.median(pair["hybrid"] / pair["plain"] for pair in timings)
        result["fit_ratio_median"] = ratio
        say(f"hybrid / plain fit time (median of {len(timings)} alternating pairs): "
            f"{ratio:.2f}x (plain median {statistics.median(p['plain'] for p in timings):.2f} "
            f"s, hybrid {statistics.median(p['hybrid'] for p in timings):.2f} s)")
    print(markdown_table(rows, ["model", "seeds", *metrics, "fit s (median)", "params"]))
    command = "python benchmarks/hybrid_ials.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    path = save(f"hybrid_ials_{args.task}", {
        "command": command, "machine": described, "wall_s": time.perf_counter() - started,
        "summary": rows, **result})
    say(f"\nwritten {path} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
