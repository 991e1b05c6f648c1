"""What every command shares: one-line errors and warnings, JSON output, data options.

Errors are mapped here, in one place: one line on stderr and exit status 1 (2 for usage
errors); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import json
import math
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import click

FORMAT_CHOICES = ("auto", "csv", "tsv", "parquet", "ml-100k", "ml-1m", "ml-latest")
DUPLICATE_CHOICES = ("error", "last", "mean", "sum")
# literal for the same reason; a test checks them against latentrec.bench.SUITE_DATASETS
BENCH_SUITES = ("explicit", "implicit")
BENCH_DATASETS = ("ml-100k", "lastfm", "gowalla")


class Context:
    debug: bool = False


def fail(message: str) -> NoReturn:
    click.echo(f"latentrec: error: {message}", err=True)
    sys.exit(1)


def run(action: Any) -> Any:
    """Call ``action``; turn expected errors into one line on stderr."""
    from latentrec.errors import LatentrecError, UnknownIdError

    try:
        # warnings are one line each on stderr, as they happen (not Python's two-line form)
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = show_warning
            return action()
    except (LatentrecError, OSError) as error:
        if Context.debug:
            raise
        if getattr(error, "agreed", False):
            # every rank of a distributed run has this error: rank 0 prints it, and the others
            # wait for that before they exit (a launcher stops the rest when one exits)
            from latentrec.training.distributed import shutdown

            if os.environ.get("RANK", "0") == "0":
                click.echo(f"latentrec: error: {str(error).splitlines()[0]}", err=True)
            shutdown(wait=True)
            sys.exit(1)
        text = (error.explain("pass --fallback") if isinstance(error, UnknownIdError)
                and error.has_fallback else str(error))
        if isinstance(error, OSError) and error.filename:
            text = f"{error.filename}: {error.strerror or text}"
        fail(text.splitlines()[0] if text else type(error).__name__)
    except TypeError as error:
        if Context.debug:
            raise
        fail(str(error).splitlines()[0])


def debug_option(function: Any) -> Any:
    """``--debug`` after the command too (``latentrec train ... --debug``)."""

    def remember(ctx: Any, param: Any, value: bool) -> bool:
        if value:
            Context.debug = True
        return value

    return click.option("--debug", is_flag=True, expose_value=False, is_eager=True,
                        callback=remember, help="Show full tracebacks for errors.")(function)


def show_warning(message: Warning | str, category: type[Warning], *args: Any,
                  **kwargs: Any) -> None:
    click.echo(f"latentrec: warning: {str(message).splitlines()[0]}", err=True)


def json_value(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def emit_json(document: Any) -> None:
    click.echo(json.dumps(document, allow_nan=False))


def read_data(path: str, fmt: str, sep: str | None, implicit: bool, duplicates: str) -> Any:
    from latentrec.data import read_interactions

    return read_interactions(path, format=fmt, sep=sep,
                             feedback="implicit" if implicit else "explicit",
                             duplicates=duplicates)  # type: ignore[arg-type]


def check_output_file(path: str) -> None:
    """Refuse, before any work, an output file that cannot be written (one line)."""
    from latentrec.errors import InvalidParameterError

    if not path.strip():
        raise InvalidParameterError("-o/--output: the file name is empty")
    target = Path(path)
    parent = target.parent
    if target.is_dir():
        raise InvalidParameterError(f"-o/--output: {target} is a directory, not a file")
    if not parent.is_dir():
        raise InvalidParameterError(f"-o/--output: {parent} does not exist or is not a "
                                    f"directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidParameterError(f"-o/--output: cannot write in {parent} (permission "
                                    f"denied)")


def output_ids(id_map: Any, given: list[str]) -> list[Any]:
    """Ids as the model spells them; an id the model does not know keeps the type the model's
    ids have when it spells one (``"99999"`` is ``99999`` for a model of integer ids)."""
    from latentrec.data.ids import canonical_int

    canonical: list[Any] = list(id_map.canonical(given))
    if not id_map.is_integer:
        return canonical
    spelled = [canonical_int(raw) if isinstance(raw, str) else None for raw in canonical]
    return [raw if number is None else number for raw, number in zip(canonical, spelled,
                                                                      strict=True)]


def data_options(function: Any) -> Any:
    options = [
        click.option("--format", "fmt", type=click.Choice(FORMAT_CHOICES), default="auto",
                     show_default=True, help="File format; 'auto' detects it."),
        click.option("--sep", default=None, help="Column separator (default: detected)."),
        click.option("--implicit", is_flag=True,
                     help="Values are weights/counts (or absent), not ratings."),
        click.option("--duplicates", type=click.Choice(DUPLICATE_CHOICES), default="error",
                     show_default=True, help="What to do with repeated (user, item) pairs."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def check_feature_sides(model_class: Any, kind: str, files: dict[str, str | None]) -> None:
    """Refuse, before any work, feature files for a side the model kind does not learn from
    (one line naming the option and the kinds that do)."""
    from latentrec.errors import InvalidParameterError
    from latentrec.models import model_kinds

    for side, path in files.items():
        if path is None or side in model_class.feature_sides:
            continue
        able = sorted(k for k, cls in model_kinds().items() if side in cls.feature_sides)
        raise InvalidParameterError(
            f"--{side[:-1]}-features: {kind} does not learn from {side[:-1]} features; model "
            f"kinds that do: {', '.join(able) or 'none installed'}")


#: what ``--user-features-kind NAME=KIND`` takes (``numeric:N``: N quantile buckets)
FEATURE_KINDS = ("categorical", "multi", "numeric", "tags")


def read_feature_file(path: str, id_col: str | None,
                      kinds: Sequence[str] | Mapping[str, str] = (),
                      option: str = "--features-kind") -> Any:
    """A feature table from ``path`` (the first column holds the ids unless ``id_col`` names
    it); its errors name the file, line and column. ``kinds``: ``NAME=KIND`` texts as the
    options give them (``option`` names them in errors), or a model's ``{name: kind}``: those
    columns are read as that kind instead of inferred."""
    from latentrec.data import read_features

    by_kind: dict[str, list[str]] = {kind: [] for kind in FEATURE_KINDS}
    buckets: dict[str, int] = {}
    pairs = kinds.items() if isinstance(kinds, Mapping) else (
        _feature_kind(text, option) for text in kinds)
    for name, kind in pairs:
        kind, _, count = kind.partition(":")
        by_kind[kind].append(name)
        if count:
            buckets[name] = int(count)
    from latentrec.errors import InvalidParameterError

    try:
        return read_features(path, id_col, categorical=by_kind["categorical"],
                             multi=by_kind["multi"], numeric=by_kind["numeric"],
                             tags=by_kind["tags"], buckets=buckets or None)
    except InvalidParameterError as error:  # the kinds asked for contradict each other
        raise InvalidParameterError(f"{option}: {error}") from None


def _feature_kind(text: str, option: str) -> tuple[str, str]:
    """``NAME=KIND`` checked: KIND one of :data:`FEATURE_KINDS`, or ``numeric:N``."""
    from latentrec.errors import InvalidParameterError

    name, equals, kind = text.partition("=")
    base, colon, count = kind.partition(":")
    if not (equals and name.strip() and base in FEATURE_KINDS) or (
            colon and not (base == "numeric" and count.isdigit() and 2 <= int(count) <= 1000)):
        raise InvalidParameterError(
            f"{option}: expected NAME=KIND with KIND one of {', '.join(FEATURE_KINDS)} or "
            f"numeric:N (N quantile buckets, 2..1000), got {text!r}")
    return name.strip(), kind


def feature_options(function: Any) -> Any:
    """``--user-features FILE --item-features FILE`` and their id columns."""
    options = [
        click.option("--user-features", type=click.Path(), default=None, metavar="FILE",
                     help="User features: CSV/TSV/Parquet, one row per user id (see "
                          "docs/features.md)."),
        click.option("--item-features", type=click.Path(), default=None, metavar="FILE",
                     help="Item features: CSV/TSV/Parquet, one row per item id."),
        click.option("--user-features-id", default=None, metavar="NAME",
                     help="The column of --user-features holding the user ids [default: the "
                          "first column]."),
        click.option("--item-features-id", default=None, metavar="NAME",
                     help="The column of --item-features holding the item ids [default: the "
                          "first column]."),
        click.option("--user-features-kind", multiple=True, metavar="NAME=KIND",
                     help="Read column NAME of --user-features as KIND: categorical, multi, "
                          "numeric, numeric:N (cut into N quantile buckets) or tags; "
                          "repeatable [default: inferred, e.g. zip codes would be numeric]."),
        click.option("--item-features-kind", multiple=True, metavar="NAME=KIND",
                     help="As --user-features-kind, for --item-features."),
    ]
    for option in reversed(options):
        function = option(function)
    return function
