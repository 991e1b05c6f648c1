"""The hand-off from the harness to a contender's child process: plain arrays in one ``.npz``.

The harness reads and splits the data once, with latentrec's own code, and writes the training
part (indices, values and raw ids) and what is to be scored to a file. A child loads it with
NumPy alone, so a peer's process never imports torch or latentrec's readers and its peak memory
is its own. No pickles: raw ids are saved as integers or fixed-width text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


def _storable_ids(ids: np.ndarray) -> np.ndarray:
    # object arrays (text ids) would need pickle; fixed-width unicode does not
    return ids if ids.dtype.kind in "iu" else ids.astype(str)


@dataclass(frozen=True)
class BenchArrays:
    """The training interactions and the queries every contender answers.

    ``test_user_ids``/``test_item_ids`` (raw ids, explicit suite) are the pairs to predict;
    ``rank_users`` (training user indices, implicit suite) are the users to rank items for.
    """

    feedback: str
    user_index: np.ndarray
    item_index: np.ndarray
    values: np.ndarray | None
    user_ids: np.ndarray
    item_ids: np.ndarray
    test_user_ids: np.ndarray | None = None
    test_item_ids: np.ndarray | None = None
    rank_users: np.ndarray | None = None

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def save(self, path: Path) -> None:
        arrays = {
            "feedback": np.array(self.feedback),
            "user_index": self.user_index,
            "item_index": self.item_index,
            "user_ids": _storable_ids(self.user_ids),
            "item_ids": _storable_ids(self.item_ids),
        }
        optional = {"values": self.values, "test_user_ids": self.test_user_ids,
                    "test_item_ids": self.test_item_ids, "rank_users": self.rank_users}
        for name, array in optional.items():
            if array is not None:
                arrays[name] = _storable_ids(array) if name.startswith("test_") else array
        np.savez(path, **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: Path) -> BenchArrays:
        with np.load(path, allow_pickle=False) as stored:
            present = {name: stored[name] for name in stored.files}
        return cls(
            feedback=str(present.pop("feedback")),
            user_index=present.pop("user_index"),
            item_index=present.pop("item_index"),
            values=present.pop("values", None),
            user_ids=present.pop("user_ids"),
            item_ids=present.pop("item_ids"),
            test_user_ids=present.pop("test_user_ids", None),
            test_item_ids=present.pop("test_item_ids", None),
            rank_users=present.pop("rank_users", None),
        )
