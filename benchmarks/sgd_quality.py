"""Held-out RMSE after each epoch: the compiled SGD kernel against the PyTorch minibatch path.

    python benchmarks/sgd_quality.py [--interactions 2000000] [--epochs 10]

The same BiasedMF model and data (the built-in generator, scaled as in benchmarks/scale.py,
5% of the ratings held out, seed 0); the kernel with its defaults (blocked parallel SGD above a
million ratings), the kernel with per-row AdaGrad steps, and the minibatch trainer with plain
SGD and with Adam, each at a learning rate that suits it. Reports valid RMSE per epoch and
seconds per epoch (writes benchmarks/results/sgd_quality.json).
"""

from __future__ import annotations

import argparse
from typing import Any

from _common import machine, markdown_table, save


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interactions", type=int, default=2_000_000)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args(argv)

    from latentrec import BiasedMF, random_split
    from latentrec.datasets import synthetic

    scale = args.interactions / 20_000_000
    data = synthetic(max(1000, int(1_000_000 * scale)), max(500, int(100_000 * scale)),
                     n_interactions=args.interactions, seed=0)
    train, valid = random_split(data, 0.05, seed=0)
    contenders: dict[str, dict[str, Any]] = {
        "kernel (defaults)": {},
        "kernel AdaGrad (optimizer='adagrad', lr 0.2, no decay)": {
            "optimizer": "adagrad", "lr": 0.2, "lr_decay": 1.0},
        "minibatch SGD (batch 4096, lr 0.05)": {"engine": "minibatch", "optimizer": "sgd",
                                                "batch_size": 4096, "lr": 0.05},
        "minibatch Adam (batch 4096, lr 0.005)": {"engine": "minibatch", "optimizer": "adam",
                                                  "batch_size": 4096, "lr": 0.005},
    }
    rows = []
    for name, params in contenders.items():
        model = BiasedMF(epochs=args.epochs, **params).fit(train, valid=valid,
                                                          show_progress=False)
        row: dict[str, Any] = {"trainer": name}
        for entry in model.history_:
            row[f"epoch {entry['epoch']}"] = entry["valid_rmse"]
        row["s/epoch"] = sum(e["seconds"] for e in model.history_) / len(model.history_)
        rows.append(row)
        print(f"{name}: " + ", ".join(f"{v:.4f}" for k, v in row.items() if k.startswith("epoch")))
    columns = ["trainer", *[k for k in rows[0] if k.startswith("epoch")], "s/epoch"]
    print(markdown_table(rows, columns))
    save("sgd_quality", {"machine": machine(), "args": vars(args), "rows": rows})


if __name__ == "__main__":
    main()
