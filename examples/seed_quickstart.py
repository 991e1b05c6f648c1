"""The seed notebook, redone with latentrec's API.

Eight (user, item, rating) triples; plain matrix factorisation with 5 factors, full-batch Adam at
lr 0.01 for 100 epochs; the loss every 10 epochs; both factor matrices; then user 0's predicted
rating of item 3, a pair the model never saw.

Run: python examples/seed_quickstart.py
"""

from __future__ import annotations

import pandas as pd

from latentrec import Interactions, MatrixFactorization

TRIPLES = [
    (0, 0, 5.0), (0, 1, 3.0), (0, 2, 4.0),
    (1, 0, 4.0), (1, 3, 1.0),
    (2, 1, 2.0), (2, 3, 5.0),
    (3, 2, 3.0),
]


def print_loss(epoch: int, logs: dict[str, float]) -> None:
    if epoch % 10 == 0:
        print(f"epoch {epoch:3d}  loss {logs['loss']:.4f}")


def main() -> float:
    users, items, ratings = zip(*TRIPLES, strict=True)
    data = Interactions.from_arrays(users, items, ratings)
    # the defaults are the notebook's: factors=5, lr=0.01, Adam, full batch, 100 epochs, no reg
    model = MatrixFactorization(seed=0)
    model.fit(data, callbacks=[print_loss], show_progress=False)
    with pd.option_context("display.precision", 3):
        print("user factors:\n", model.factors("users"))
        print("item factors:\n", model.factors("items"))
    prediction = model.predict(0, 3)
    print(f"predicted rating of user 0 for item 3: {prediction:.3f}")
    return model.history_[-1]["loss"]


if __name__ == "__main__":
    main()
