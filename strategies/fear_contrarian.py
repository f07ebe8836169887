"""Buy at extreme fear (rule A1 of the rule book, ``RULES.md``).

The rule, as RULES.md states it (sources ``004_*`` glossary, ``000_*``/``001_*`` §7):

    "enter long when the fear reading is at or below the extreme-fear threshold
    (default 25 on the 0–100 index; or VIX ≥ 30, with a larger size at VIX ≥ 40).
    Exit: **open** — the bands suggest taking profit at greed (≥ 55) or selling at
    extreme greed (≥ 75); a maximum holding period is natural (the documents speak
    of 1-month and 3-month horizons)."

Glossary bands of the CNN Fear & Greed index and the success rate each claims:
0–25 extreme fear, aggressive buy, 85%; 25–45 fear, buy the dip, 75%; 45–55
neutral, follow the trend, 60%; 55–75 greed, consider taking profit, 70%; 75–100
extreme greed, aggressive sell, 80% (``claims``, as shares of positive forward
returns: the greed bands' sell claims become 30% and 20%). VIX bands: 10–15 extreme optimism, 15–20
optimistic, 20–30 anxiety, 30–40 fear (consider contrarian buying), 40+ panic
(aggressive buying).

What the strategy does, on the event path (``on_bar``, after each close):

* flat, and the reading is at or below ``fear_threshold`` (``signal="fear_greed"``)
  or at or above ``vix_threshold`` (``signal="vix"``): buy ``size`` of equity (VIX:
  ``vix_size`` between ``vix_threshold`` and ``vix_aggressive``, ``size`` at or
  above ``vix_aggressive``), filled at the next bar's open;
* long on the VIX tier and VIX reaches ``vix_aggressive``: top up to ``size`` once;
* long, and Fear & Greed is at or above ``exit_threshold`` (exit reason
  ``"greed"``) or VIX at or below ``vix_exit`` (``"vix_calm"``): sell at the next open;
* long for ``max_hold`` bars: the exit is placed so that it fills ``max_hold`` bars
  after the entry fill (reason ``"time"``; ``bars_held == max_hold``).

A reading that is missing (NaN: before the feed starts, in its 2020 June gap, after
it ends, or older than ``feed_max_age`` bars) neither enters nor exits on the
level; the time exit still applies. The entry is on the level, not on a cross: a
reading still in extreme fear after an exit enters again.

**When a Fear & Greed value may be used.** CNN publishes the index after the US
close. A value dated ``d`` is therefore known at the close of bar ``d``, which is
exactly when ``on_bar`` runs for bar ``d``; the order it places fills at bar
``d + 1``'s open. So ``fg_lag = 0`` is point-in-time for daily bars, and the feed
never shows day ``d``'s value at an earlier bar (tests check both). ``fg_lag = 1``
(one bar later) is the cautious reading if the value comes too late to act on
before the next open. The VIX close is known at the close too (lag 0).

Parameters the documents leave open (defaults chosen here): ``exit_threshold``
(55, the start of the greed band), ``vix_exit`` (20, the top of the optimistic
band), ``max_hold`` (63 bars, the 3-month horizon), ``size`` and ``vix_size`` (how
large is "larger"), ``fg_lag`` and ``feed_max_age`` (the data's timing).
Parameters the documents fix: ``fear_threshold`` 25, ``vix_threshold`` 30,
``vix_aggressive`` 40.

Default data: the S&P 500 index (``datasets/sp500_daily.parquet``) from 2011, with
the Fear & Greed feed (``datasets/fear_greed.parquet``, from 2011-01-03; values up
to 2021-01-29 are a third-party reconstruction) or the VIX close
(``datasets/vix_daily.parquet``) joined point-in-time.
"""

import numpy as np

from engine import Feed, Strategy, param
from engine.errors import ParameterError

FG_BANDS = (  # (upper bound, inclusive) -> glossary mood
    (25.0, "extreme fear"), (45.0, "fear"), (55.0, "neutral"), (75.0, "greed"),
    (np.inf, "extreme greed"),
)
VIX_BANDS = (  # (lower bound, inclusive) -> glossary mood, highest first
    (40.0, "panic"), (30.0, "fear"), (20.0, "anxiety"), (15.0, "optimistic"),
    (-np.inf, "extreme optimism"),
)


def fear_greed_band(values) -> np.ndarray:
    """The glossary's mood for each Fear & Greed reading (None where missing)."""
    values = np.asarray(values, dtype=float)
    out = np.full(values.shape, None, dtype=object)
    lower = -np.inf
    for upper, label in FG_BANDS:
        out[(values > lower) & (values <= upper)] = label
        lower = upper
    return out


def vix_band(values) -> np.ndarray:
    """The glossary's mood for each VIX reading (None where missing)."""
    values = np.asarray(values, dtype=float)
    out = np.full(values.shape, None, dtype=object)
    upper = np.inf
    for lower, label in VIX_BANDS:
        out[(values >= lower) & (values < upper)] = label
        upper = lower
    return out


class FearContrarian(Strategy):
    default_data = "../datasets/sp500_daily.parquet"
    default_start = "2011-01-01"
    feeds = {
        "fear_greed": Feed("../datasets/fear_greed.parquet", columns=["fear_greed"]),
        "vix": Feed("../datasets/vix_daily.parquet", columns={"close": "vix"}),
    }
    # Claimed share of positive forward returns. The greed bands' claims are about
    # selling (taking profit 70%, selling 80%): a sell succeeds when the price does
    # not rise, so as a share of rising prices they read 1 - 0.70 and 1 - 0.80.
    # "Follow the trend" in the neutral band is read as the market rising (60%).
    fear_greed_claims = {"extreme fear": 0.85, "fear": 0.75, "neutral": 0.60,
                         "greed": 0.30, "extreme greed": 0.20}

    @property
    def claims(self):
        # The rates are the glossary's for the Fear & Greed bands; the VIX bands (one
        # of them also called "fear") come with stances, not rates.
        return self.fear_greed_claims if self.signal == "fear_greed" else {}

    signal: str = param("fear_greed", choices=("fear_greed", "vix"),
                        help="the fear reading: CNN Fear & Greed (0-100) or the VIX close")
    fear_threshold: float = param(25.0, min=0, max=100,
                                  help="enter when Fear & Greed <= this (extreme fear)")
    exit_threshold: float = param(55.0, min=0, max=100,
                                  help="exit when Fear & Greed >= this (greed); open in the notes")
    vix_threshold: float = param(30.0, min=0, help="enter when VIX >= this (fear band)")
    vix_aggressive: float = param(40.0, min=0,
                                  help="VIX >= this buys the larger size (panic band)")
    vix_exit: float = param(20.0, min=0, help="exit when VIX <= this; open in the notes")
    max_hold: int = param(63, min=0,
                          help="bars a position is held at most (0: no limit); open in the notes")
    size: float = param(1.0, min=0.01, max=1.0,
                        help="fraction of equity bought (F&G; VIX >= vix_aggressive)")
    vix_size: float = param(0.5, min=0.01, max=1.0,
                            help="fraction of equity bought when vix_threshold <= VIX < "
                                 "vix_aggressive")
    fg_lag: int = param(0, min=0, help="bars after its date before a F&G value is used")
    feed_max_age: int = param(5, min=0,
                              help="a reading older than this many bars counts as missing")

    def validate(self):
        if self.exit_threshold <= self.fear_threshold:
            raise ParameterError(f"exit_threshold ({self.exit_threshold}) must be above "
                                 f"fear_threshold ({self.fear_threshold})")
        if self.vix_aggressive < self.vix_threshold:
            raise ParameterError(f"vix_aggressive ({self.vix_aggressive}) must be at least "
                                 f"vix_threshold ({self.vix_threshold})")
        if self.vix_exit >= self.vix_threshold:
            raise ParameterError(f"vix_exit ({self.vix_exit}) must be below "
                                 f"vix_threshold ({self.vix_threshold})")
        if self.signal == "vix" and self.vix_size > self.size:
            raise ParameterError(f"vix_size ({self.vix_size}) must not exceed size "
                                 f"({self.size}), the larger position")

    def feed_specs(self):
        if self.signal == "fear_greed":
            return {"fear_greed": self.feeds["fear_greed"].replace(
                lag=self.fg_lag, max_age=self.feed_max_age)}
        return {"vix": self.feeds["vix"].replace(max_age=self.feed_max_age)}

    # -- event path ---------------------------------------------------------------
    def on_start(self):
        self.reading = self.data.fear_greed if self.signal == "fear_greed" else self.data.vix
        self.entry_bar = -1  # bar of the entry fill
        self.topped_up = False

    def on_fill(self, fill):
        if fill["side"] > 0 and self.entry_bar < 0:
            self.entry_bar = fill["done_bar"]

    def on_bar(self, bar):
        value = self.reading[-1]
        if self.position > 0:
            if self.entry_bar < 0:  # defensive: a fill not reported
                self.entry_bar = bar.index
            if self.max_hold and bar.index - self.entry_bar >= self.max_hold - 1:
                self._exit("time")
            elif self.signal == "fear_greed" and value >= self.exit_threshold:
                self._exit("greed")
            elif self.signal == "vix" and value <= self.vix_exit:
                self._exit("vix_calm")
            elif (self.signal == "vix" and not self.topped_up and self.vix_size < self.size
                  and value >= self.vix_aggressive):
                self.order_target_percent(self.size, tag="top_up")
                self.topped_up = True
            return
        self.entry_bar, self.topped_up = -1, False
        if self.signal == "fear_greed":
            if value <= self.fear_threshold:
                self.buy(percent=self.size, tag="extreme_fear")
        elif value >= self.vix_aggressive:
            self.buy(percent=self.size, tag="vix_panic")
            self.topped_up = True
        elif value >= self.vix_threshold:
            self.buy(percent=self.vix_size, tag="vix_fear")

    def _exit(self, reason):
        if not self.open_orders():
            self.close(tag=reason)

    # -- report hooks ----------------------------------------------------------------
    def entry_condition(self, data):
        if self.signal == "fear_greed":
            return np.asarray(data.fear_greed) <= self.fear_threshold
        return np.asarray(data.vix) >= self.vix_threshold

    def entry_labels(self, data):
        if self.signal == "fear_greed":
            return fear_greed_band(data.fear_greed)
        return vix_band(data.vix)
