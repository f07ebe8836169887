"""Feeds: alternative data joined onto the bars point-in-time (engine/feeds.py)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

import engine
from engine import Feed
from engine.data.feeds import FeedWarning, join_feeds
from engine.errors import DataError, StrategyError

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT / "datasets"


def bars(dates, symbols=("X",)):
    """A panel of flat bars (close 10) on the given dates for the given symbols."""
    rows = [{"ts": pd.Timestamp(d), "symbol": s, "open": 10.0, "high": 10.0, "low": 10.0,
             "close": 10.0, "volume": 100.0} for d in dates for s in symbols]
    return engine.load_bars(pd.DataFrame(rows))


DAYS = pd.date_range("2024-01-01", periods=10, freq="D")  # Mon 1 .. Wed 10


def joined(panel, feed, name="f"):
    return join_feeds(panel, {name: feed})


def column(panel, field, symbol=0):
    return panel.fields[field][:, symbol]


# --------------------------------------------------------------------------- timing


def test_a_value_is_visible_from_its_own_bar_with_lag_zero_and_never_before():
    feed = pd.DataFrame({"ts": pd.to_datetime(["2024-01-03", "2024-01-06"]), "fg": [20.0, 60.0]})
    out = column(joined(bars(DAYS), Feed(feed)), "fg")
    expected = [np.nan, np.nan, 20, 20, 20, 60, 60, 60, 60, 60]
    np.testing.assert_array_equal(out, expected)


def test_lag_in_bars_counts_bars_and_a_time_lag_waits_for_the_next_bar():
    # Fri 2024-01-05 then Mon 2024-01-08: a weekend gap
    days = pd.to_datetime(["2024-01-04", "2024-01-05", "2024-01-08", "2024-01-09"])
    feed = pd.DataFrame({"ts": pd.to_datetime(["2024-01-05"]), "fg": [30.0]})
    by_bars = column(joined(bars(days), Feed(feed, lag=1)), "fg")
    np.testing.assert_array_equal(by_bars, [np.nan, np.nan, 30, 30])
    by_time = column(joined(bars(days), Feed(feed, lag="1D")), "fg")  # Saturday -> Monday
    np.testing.assert_array_equal(by_time, [np.nan, np.nan, 30, 30])
    by_hours = column(joined(bars(days), Feed(feed, lag="36h")), "fg")
    np.testing.assert_array_equal(by_hours, [np.nan, np.nan, 30, 30])
    two_bars = column(joined(bars(days), Feed(feed, lag=2)), "fg")
    np.testing.assert_array_equal(two_bars, [np.nan, np.nan, np.nan, 30])


def test_an_intraday_availability_time_is_used_from_the_next_bar():
    feed = pd.DataFrame({
        "ts": pd.to_datetime(["2024-01-01", "2024-01-02"]),
        "seen": pd.to_datetime(["2024-01-03 00:00", "2024-01-05 07:38"], utc=True),
        "v": [1.0, 2.0],
    })
    out = column(joined(bars(DAYS), Feed(feed, available_at="seen")), "v")
    # 01-03 00:00 is the bar's own stamp: visible there; 07:38 on 01-05 is after it
    np.testing.assert_array_equal(out, [np.nan, np.nan, 1, 1, 1, 2, 2, 2, 2, 2])


def test_the_latest_observation_wins_not_the_latest_published():
    # the 01-15 figure is published late (01-20) after the 01-31 figure (01-13)
    feed = pd.DataFrame({
        "symbol": ["A", "A", "A"],
        "settle": pd.to_datetime(["2023-12-29", "2024-01-15", "2024-01-31"]),
        "seen": pd.to_datetime(["2024-01-02", "2024-01-20", "2024-02-03"]),
        "short": [1.0, 2.0, 3.0],
    })
    days = pd.date_range("2024-01-01", "2024-02-05", freq="D")
    out = column(joined(bars(days, ["A"]), Feed(feed, on="settle", available_at="seen",
                                                by_symbol=True)), "short")
    at = {d: v for d, v in zip(days.strftime("%m-%d"), out, strict=True)}
    assert np.isnan(at["01-01"]) and at["01-02"] == 1 and at["01-19"] == 1
    assert at["01-20"] == 2 and at["02-02"] == 2 and at["02-03"] == 3
    # a revision of an observation (same settle date, later seen) replaces it
    revised = pd.concat([feed, pd.DataFrame({"symbol": ["A"], "settle": [pd.Timestamp(
        "2024-01-15")], "seen": [pd.Timestamp("2024-01-25")], "short": [2.5]})])
    out = column(joined(bars(days, ["A"]), Feed(revised, on="settle", available_at="seen",
                                                by_symbol=True)), "short")
    at = {d: v for d, v in zip(days.strftime("%m-%d"), out, strict=True)}
    assert at["01-24"] == 2 and at["01-25"] == 2.5 and at["02-03"] == 3


def test_a_missing_value_is_missing_not_the_previous_one():
    feed = pd.DataFrame({"ts": DAYS[[1, 3, 5]], "v": [1.0, np.nan, 3.0]})
    out = column(joined(bars(DAYS), Feed(feed)), "v")
    np.testing.assert_array_equal(out, [np.nan, 1, 1, np.nan, np.nan, 3, 3, 3, 3, 3])


def test_max_age_expires_stale_values():
    feed = pd.DataFrame({"ts": DAYS[[1]], "v": [5.0]})
    in_bars = column(joined(bars(DAYS), Feed(feed, max_age=2)), "v")
    np.testing.assert_array_equal(in_bars, [np.nan, 5, 5, 5] + [np.nan] * 6)
    in_time = column(joined(bars(DAYS), Feed(feed, max_age="3D")), "v")
    np.testing.assert_array_equal(in_time, [np.nan, 5, 5, 5, 5] + [np.nan] * 5)


def test_auto_max_age_is_the_publication_gap_plus_the_delay_plus_a_week():
    # A semi-monthly feed per symbol: settled on the 1st and the 15th, seen 3 days later,
    # then no publication after 2024-02-15 (the feed stops).
    days = pd.date_range("2024-01-01", "2024-04-30", freq="D")
    settled = pd.to_datetime(["2024-01-01", "2024-01-15", "2024-02-01", "2024-02-15"])
    short = pd.DataFrame({"symbol": "X", "settlement_date": settled,
                          "first_seen": settled + pd.Timedelta(days=3),
                          "shares_sold_short": [1.0, 2.0, 3.0, 4.0]})
    # gaps 14, 17, 14 days (median 14) + delay 3 + a week = 24 days
    from engine.data.feeds import publication_max_age

    on = settled.values.astype("datetime64[ns]").view(np.int64)
    assert publication_max_age(on, on + 3 * 86_400 * 10**9) == 24
    assert publication_max_age(on) == 21
    panel = join_feeds(bars(days), {"si": Feed(short, columns=["shares_sold_short"],
                                               on="settlement_date", available_at="first_seen",
                                               by_symbol=True, max_age="auto")})
    assert panel.meta["feeds"]["si"]["max_age"] == "24D"
    out = pd.Series(column(panel, "shares_sold_short"), index=days)
    # each value from its first_seen day; the last one (settled 02-15) expires after
    # 24 days: seen up to 2024-03-10, missing from 2024-03-11 on (no signal on stale data)
    assert np.isnan(out["2024-01-03"]) and out["2024-01-04"] == 1.0
    assert out["2024-02-18"] == 4.0 and out["2024-03-10"] == 4.0
    assert out["2024-03-11":].isna().all()
    # without max_age the stale value would be carried to the end
    forever = join_feeds(bars(days), {"si": Feed(short, columns=["shares_sold_short"],
                                                 on="settlement_date", by_symbol=True,
                                                 available_at="first_seen")})
    assert column(forever, "shares_sold_short")[-1] == 4.0
    # one publication date is no schedule: a clear error naming the feed
    with pytest.raises(DataError, match="feed 'si'.*at least two distinct publication"):
        join_feeds(bars(days), {"si": Feed(short.head(1), columns=["shares_sold_short"],
                                           on="settlement_date", by_symbol=True,
                                           max_age="auto")})


def test_the_short_squeeze_strategy_expires_short_interest_after_35_days():
    import warnings as w

    with w.catch_warnings():
        w.simplefilter("ignore")
        result = engine.run(ROOT / "strategies" / "short_squeeze.py", end="2021-01-10")
    assert result.panel.meta["feeds"]["short_interest"]["max_age"] == "35D"


def test_random_feeds_match_a_brute_force_point_in_time_reference():
    rng = np.random.default_rng(7)
    days = pd.bdate_range("2024-01-01", periods=60)
    symbols = ["A", "B", "C"]
    n = 80
    on = pd.Timestamp("2023-12-20") + pd.to_timedelta(rng.integers(0, 90, n), "D")
    seen = on + pd.to_timedelta(rng.integers(0, 20 * 24, n), "h")
    feed = pd.DataFrame({"symbol": rng.choice(symbols + ["ZZZ"], n), "on": on, "seen": seen,
                         "v": rng.normal(size=n)})
    feed = feed.drop_duplicates(["symbol", "on", "seen"])
    panel = bars(days, symbols)
    with pytest.warns(FeedWarning, match="1 symbol not in the bars, ignored"):
        out = joined(panel, Feed(feed, on="on", available_at="seen", by_symbol=True)).fields["v"]
    for j, sym in enumerate(symbols):
        rows = feed[feed.symbol == sym]
        for t, ts in enumerate(days):
            known = rows[rows.seen <= ts]
            if known.empty:
                assert np.isnan(out[t, j])
            else:
                best = known.sort_values(["on", "seen"]).iloc[-1]
                assert out[t, j] == best.v
    # causal: the join on the first half of the bars is the first half of the join
    with pytest.warns(FeedWarning):
        head = joined(panel.slice(0, 30), Feed(feed, on="on", available_at="seen",
                                               by_symbol=True)).fields["v"]
    np.testing.assert_array_equal(head, out[:30])


# --------------------------------------------------------------------------- the real files


def test_fear_greed_is_never_used_before_its_date():
    panel = engine.load_bars(DATASETS / "sp500_daily.parquet", start="2011-01-01",
                             end="2026-05-01")
    out = join_feeds(panel, {"fg": Feed(DATASETS / "fear_greed.parquet")})
    fg = pl.read_parquet(DATASETS / "fear_greed.parquet")
    value = out.fields["fear_greed"][:, 0]
    dates = panel.ts.astype("datetime64[D]")
    source = dict(zip(fg["ts"].to_numpy().astype("datetime64[D]"), fg["fear_greed"].to_numpy(),
                      strict=True))
    # on every bar with a value dated that day, the joined value is that day's value
    same_day = [i for i, d in enumerate(dates) if d in source]
    assert len(same_day) > 3800
    assert all(value[i] == source[dates[i]] for i in same_day)
    # every other bar shows the latest value dated at or before it, none dated after
    known = np.array(sorted(source))
    for i in np.flatnonzero(np.isfinite(value)):
        latest = known[np.searchsorted(known, dates[i], "right") - 1]
        assert latest <= dates[i] and value[i] == source[latest]


def test_short_interest_is_never_used_before_first_seen():
    si = pl.read_parquet(DATASETS / "short_interest.parquet").filter(
        pl.col("symbol").is_in(["GME", "AMC", "BBBY", "A"]))
    panel = engine.load_bars(pl.read_parquet(DATASETS / "short_universe_daily.parquet").filter(
        pl.col("symbol").is_in(["GME", "AMC", "BBBY", "A"])).drop("split_factor", "volume_adj"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = join_feeds(panel, {"si": Feed(si, columns=["shares_sold_short"],
                                            on="settlement_date", available_at="first_seen",
                                            by_symbol=True)})
    gme = panel.symbols.index("GME")
    value = out.fields["shares_sold_short"][:, gme]
    at = dict(zip(panel.ts.astype("datetime64[D]").astype(str), value, strict=True))
    # GME 2020-12-31 settlement: 71.2M shares, first seen 2021-01-13 07:38 UTC
    assert at["2021-01-13"] != 71.2e6 and at["2021-01-14"] == 71.2e6
    for j, sym in enumerate(panel.symbols):
        rows = si.filter(pl.col("symbol") == sym)
        seen = rows["first_seen"].dt.replace_time_zone(None).to_numpy()
        for t in np.flatnonzero(np.isfinite(out.fields["shares_sold_short"][:, j])):
            used = rows.filter(pl.col("shares_sold_short") == out.fields["shares_sold_short"][t, j])
            assert (used["first_seen"].dt.replace_time_zone(None).to_numpy() <= panel.ts[t]).any()
        assert len(seen) == rows.height


# --------------------------------------------------------------------------- errors


def test_text_columns_are_refused_or_mapped():
    feed = pd.DataFrame({"ts": DAYS[:2], "rating": ["fear", "greed"]})
    with pytest.raises(DataError, match=r"feed 'f' .*column 'rating' holds text.*mapping="):
        joined(bars(DAYS), Feed(feed, columns=["rating"]))
    out = joined(bars(DAYS), Feed(feed, columns=["rating"],
                                  mapping={"rating": {"fear": 1, "greed": 2}}))
    np.testing.assert_array_equal(column(out, "rating")[:3], [1, 2, 2])
    with pytest.raises(DataError, match="does not cover: 'greed'"):
        joined(bars(DAYS), Feed(feed, columns=["rating"], mapping={"rating": {"fear": 1}}))
    # without columns=, text columns are simply not taken
    assert "rating" not in joined(bars(DAYS), Feed(feed.assign(v=1.0))).fields


def test_errors_name_the_feed_the_file_the_column_and_the_fix(tmp_path):
    path = tmp_path / "fg.parquet"
    pl.DataFrame({"ts": DAYS[:3], "fear_greed": [1.0, 2.0, 3.0]}).write_parquet(path)
    panel = bars(DAYS)
    with pytest.raises(DataError, match=r"feed 'fg' \(.*fg.parquet\): no column 'fear_grede'"
                                        r".*Did you mean 'fear_greed'.*Fix:"):
        join_feeds(panel, {"fg": Feed(path, columns=["fear_grede"])})
    with pytest.raises(DataError, match=r"no column 'published'.*available_at"):
        join_feeds(panel, {"fg": Feed(path, available_at="published")})
    with pytest.raises(DataError, match="no such file: .*nope.parquet"):
        join_feeds(panel, {"fg": Feed("nope.parquet")}, base_dir=tmp_path)
    late = bars(pd.date_range("2025-01-01", periods=3))
    with pytest.raises(DataError, match=r"feed 'fg'.*no value is available during the bars.*"
                                        r"2024-01-01 to 2024-01-03.*2025-01-01 to 2025-01-03"):
        join_feeds(late, {"fg": Feed(path)})
    with pytest.raises(DataError, match="lag is -1 bars; it must be >= 0"):
        join_feeds(panel, {"fg": Feed(path, lag=-1)})
    with pytest.raises(DataError, match="lag='soon' is neither"):
        join_feeds(panel, {"fg": Feed(path, lag="soon")})
    with pytest.raises(DataError, match="which the bars already have"):
        join_feeds(panel, {"fg": Feed(path, columns={"fear_greed": "close"})})
    twice = pd.DataFrame({"ts": [DAYS[0], DAYS[0]], "v": [1.0, 2.0]})
    with pytest.raises(DataError, match="two rows share 'ts' 2024-01-01.*by_symbol=True"):
        join_feeds(panel, {"x": Feed(twice)})
    early = pd.DataFrame({"ts": [DAYS[2]], "seen": [DAYS[1]], "v": [1.0]})
    with pytest.raises(DataError, match="'seen' is before 'ts'.*cannot be known before"):
        join_feeds(panel, {"x": Feed(early, available_at="seen")})
    alien = pd.DataFrame({"ts": [DAYS[0]], "symbol": ["ZZ"], "v": [1.0]})
    with pytest.raises(DataError, match=r"none of its symbols \(ZZ\) is in the bars"):
        join_feeds(panel, {"x": Feed(alien, by_symbol=True)})


def test_a_feed_joined_again_replaces_its_fields():
    feed = pd.DataFrame({"ts": DAYS[[2]], "v": [7.0]})
    once = joined(bars(DAYS), Feed(feed))
    again = joined(once, Feed(feed, lag=2))
    np.testing.assert_array_equal(column(again, "v")[:5], [np.nan] * 4 + [7])
    assert again.meta["feeds"]["f"]["lag"] == 2


# --------------------------------------------------------------------------- engine.run


class Reader(engine.Strategy):
    feeds = {"fg": Feed(pd.DataFrame({"ts": DAYS[[0, 4]], "fg": [10.0, 90.0]}))}

    def on_start(self):
        self.seen = []

    def on_bar(self, bar):
        self.seen.append(self.data.fg[-1])
        if self.data.fg[-1] < 50 and self.position == 0:
            self.buy()
        elif self.data.fg[-1] > 50 and self.position > 0:
            self.close(tag="greed")


def test_run_joins_the_strategys_feeds_also_onto_given_data_and_feeds_overrides_them():
    from conftest import make_bars

    data = make_bars([(10, 10, 10, 10)] * 10)
    result = engine.run(Reader, data)
    np.testing.assert_array_equal(result.panel.fields["fg"][:, 0], [10] * 4 + [90] * 6)
    trade = result.trades.row(0, named=True)
    assert str(trade["entry_ts"])[:10] == "2024-01-02"  # signal on bar 0, filled at bar 1
    assert str(trade["exit_ts"])[:10] == "2024-01-06" and trade["exit_reason"] == "greed"
    other = {"fg": Feed(pd.DataFrame({"ts": DAYS[[0]], "fg": [90.0]}))}
    assert engine.run(Reader, data, feeds=other).trades.height == 0
    with pytest.raises(StrategyError, match="no field 'fg'"):
        engine.run(Reader, data, feeds={})
