"""Is the PBO of a Bayesian search's sets readable? A check on pure noise.

For six seeded random walks (no edge to find), the probability of backtest
overfitting (CSCV, :func:`engine.analysis.stats.probability_of_overfitting`) of the
sets tried by a 60-trial Optuna search of sma_cross, against that of 60 sets drawn at
random from the same space, each from the sets' own ``engine.run`` returns. The
search's PBO came out neither systematically above nor below the random sample's,
which is why ``method="optuna"`` does not report it (docs/sweeps.md, Bayesian search).

Run: ``python bench/search_pbo.py`` (about a minute).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

import engine
from engine.analysis.metrics import bar_returns
from engine.analysis.stats import probability_of_overfitting
from engine.data.synthetic import random_walk

SMA = str(Path(__file__).resolve().parents[1] / "strategies" / "sma_cross.py")
SPACE = {"fast": list(range(2, 50)), "slow": list(range(50, 251, 10))}


def pbo_of(bars, sets) -> float:
    returns = np.column_stack([
        bar_returns(engine.run(SMA, bars, fast=f, slow=s, audit="off").equity["equity"]
                    .to_numpy(), 100_000.0) for f, s in sets])
    return probability_of_overfitting(returns)["pbo"]


def main() -> None:
    warnings.simplefilter("ignore")
    pairs = []
    print("seed  search sets  search PBO  random sets  random PBO")
    for seed in range(6):
        bars = random_walk(2520, seed=100 + seed)
        tried = engine.sweep(SMA, SPACE, method="optuna", trials=60, seed=seed, data=bars,
                             n_jobs=1, progress=False, stats=False)
        drawn = engine.sweep(SMA, SPACE, samples=60, seed=seed, data=bars, n_jobs=1,
                             progress=False, stats=False)
        rows = [frame.filter(frame["error"].is_null()).select("fast", "slow").rows()
                for frame in (tried, drawn)]
        pair = (pbo_of(bars, rows[0]), pbo_of(bars, rows[1]))
        pairs.append(pair)
        print(f"{seed:4d}  {len(rows[0]):11d}  {pair[0]:10.0%}  {len(rows[1]):11d}  "
              f"{pair[1]:10.0%}")
    print(f"mean: search {np.mean([a for a, _ in pairs]):.0%}, random "
          f"{np.mean([b for _, b in pairs]):.0%}")


if __name__ == "__main__":
    main()
