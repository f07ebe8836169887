"""Strategy.signals_batch and ParameterSets: the signals of many parameter sets in one
call, checked by the sweep against each set's own signals and audited for look-ahead.

(The batched rows' equality with engine.run for a strategy with the hook is in
tests/test_batched_sweep.py, whose suite runs with and without it.)"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

import engine
import engine.research.sweep
from engine.data.synthetic import random_walk
from engine.errors import ParameterError, StrategyError
from engine.indicators import crossings, macd, sma
from engine.research import batched
from engine.strategy.parameter_sets import ParamArray, ParameterSets

# ----------------------------------------------------------------------------- ParameterSets


def test_columns_are_the_sets_values_and_unknown_names_say_which_exist():
    sets = ParameterSets([{"fast": 2, "slow": 10}, {"fast": 3, "slow": 10}])
    assert len(sets) == 2 and sets.names == ("fast", "slow")
    assert isinstance(sets.fast, ParamArray) and sets.fast.tolist() == [2, 3]
    assert isinstance(sets.slow * 2, ParamArray) and (sets.slow * 2).tolist() == [20, 20]
    assert sets.params(1) == {"fast": 3, "slow": 10}
    with pytest.raises(AttributeError, match=r"no parameter 'fsat'.*Did you mean 'fast'"):
        sets.fsat  # noqa: B018
    with pytest.raises(ParameterError, match=r"parameters: fast, slow"):
        sets["nope"]


def test_map_calls_once_per_distinct_value_and_keeps_results_in_its_cache():
    from engine.strategy.base import VectorData

    close = VectorData(random_walk(200, seed=1)).close   # sealed: cached by its memory
    calls = []

    def counted(x, window):
        calls.append(window)
        return sma(x, window)

    cache: dict = {}
    sets = ParameterSets([{"w": w} for w in (5, 3, 5, 9, 3)], cache=cache)
    out = sets.map(counted, close, sets.w)
    assert out.shape == (200, 5)
    assert sorted(calls) == [3, 5, 9]           # once per distinct value
    for j, w in enumerate((5, 3, 5, 9, 3)):
        assert np.array_equal(out[:, j], sma(close, w), equal_nan=True)
    out[:] = 0.0                                 # the caller's copy, not the cache's
    again = ParameterSets([{"w": 9}, {"w": 5}, {"w": 20}], cache=cache)
    second = again.map(counted, close, again.w)
    assert sorted(calls) == [3, 5, 9, 20]        # 9 and 5 came from the cache
    assert np.array_equal(second[:, 0], sma(close, 9), equal_nan=True)
    # an argument that is not the panel's sealed data is not cached between calls
    ParameterSets([{"w": 9}], cache=cache).map(counted, np.array(close), ParamArray([9]))
    assert calls.count(9) == 2


def test_map_lays_out_symbols_and_tuple_results():
    close = np.cumsum(np.random.default_rng(2).standard_normal((120, 3)), axis=0) + 50
    sets = ParameterSets([{"fast": f, "slow": 26} for f in (5, 12)])
    out = sets.map(sma, close, sets.fast)
    assert out.shape == (120, 2, 3)
    assert np.array_equal(out[:, 1, :], sma(close, 12), equal_nan=True)
    lines = sets.map(macd, close, fast=sets.fast, slow=26)
    assert type(lines).__name__ == "MACD" and lines.signal.shape == (120, 2, 3)
    assert np.array_equal(lines.histogram[:, 0], macd(close, 5, 26).histogram,
                          equal_nan=True)


def test_map_refuses_results_that_are_not_bars():
    sets = ParameterSets([{"w": 2}, {"w": 3}])
    with pytest.raises(StrategyError, match="returned float"):
        sets.map(lambda w: float(w), sets.w)
    with pytest.raises(StrategyError, match="different shapes"):
        sets.map(lambda w: np.zeros(w), sets.w)
    with pytest.raises(ParameterError, match="not one value per set"):
        sets.map(sma, np.zeros(10), ParamArray([1, 2, 3]))


def test_crossings_of_sets_equal_crossings_column_by_column():
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((300, 4, 2)), rng.standard_normal((300, 4, 2))
    a[::7] = b[::7]                              # ties
    up, down = crossings(a, b)
    assert up.shape == (300, 4, 2)
    for j in range(4):
        one_up, one_down = crossings(a[:, j, :], b[:, j, :])
        assert np.array_equal(up[:, j, :], one_up) and np.array_equal(down[:, j, :], one_down)
    with pytest.raises(ParameterError, match="same shape"):
        crossings(a, b[:, :3])


# ----------------------------------------------------------------------------- the sweep

BASE = textwrap.dedent('''
    import numpy as np

    from engine import Signals, Strategy, param
    from engine.indicators import crossings, sma


    class Cross(Strategy):
        fast: int = param(5, min=1)
        slow: int = param(20, min=2)

        def signals(self, data):
            entries, exits = crossings(sma(data.close, self.fast), sma(data.close, self.slow))
            return Signals(entries=entries, exits=exits)
''')


def _strategy(tmp_path, hook: str):
    path = tmp_path / "cross.py"
    path.write_text(BASE + textwrap.indent(textwrap.dedent(hook), "    "))
    return path


GRID = {"fast": [2, 3, 5], "slow": [10, 20]}


def test_a_hook_that_disagrees_with_signals_makes_error_rows_saying_where(tmp_path):
    path = _strategy(tmp_path, '''
        @classmethod
        def signals_batch(cls, data, sets):
            fast = sets.map(sma, data.close, sets.fast + 1)   # off by one
            entries, exits = crossings(fast, sets.map(sma, data.close, sets.slow))
            return Signals(entries=entries, exits=exits)
    ''')
    frame = engine.sweep(path, GRID, data=random_walk(300, seed=1), n_jobs=1, progress=False)
    errors = frame["error"].to_list()
    assert all(errors), errors
    assert "Cross.signals_batch disagrees with Cross.signals for the set fast=2, slow=10" \
        in errors[0]
    assert "entries differ at bar" in errors[0] and "Fix signals_batch" in errors[0]


def test_a_hook_that_raises_or_returns_the_wrong_shape_makes_error_rows(tmp_path):
    data = random_walk(200, seed=2)
    raising = _strategy(tmp_path, '''
        @classmethod
        def signals_batch(cls, data, sets):
            raise ValueError("not today")
    ''')
    # a hook that raises: the sets run signals one by one (their rows are engine.run's),
    # and the sweep says why, with the line of the strategy's file
    with pytest.warns(engine.research.sweep.SweepWarning,
                      match=r"Cross.signals_batch raised ValueError: not today \(.*cross.py, "
                            r"line \d+, in signals_batch\).*ran signals one by one \(6 of 6"):
        frame = engine.sweep(raising, GRID, data=data, n_jobs=1, progress=False)
    assert frame["error"].is_null().all()
    (tmp_path / "plain").mkdir()
    plain = engine.sweep(_strategy(tmp_path / "plain", ""), GRID, data=data, n_jobs=1,
                         progress=False)
    assert frame.equals(plain, null_equal=True)
    shaped = tmp_path / "shaped"
    shaped.mkdir()
    wrong = _strategy(shaped, '''
        @classmethod
        def signals_batch(cls, data, sets):
            entries = np.zeros(len(data), dtype=bool)     # one column, not one per set
            return Signals(entries=entries, exits=entries)
    ''')
    frame = engine.sweep(wrong, GRID, data=data, n_jobs=1, progress=False)
    assert all("entries has shape (200,); expected (200, 1) (one row per bar, one column "
               "per set)" in e for e in frame["error"].to_list())  # one set per batch here


def test_a_hook_that_differs_only_on_shorter_data_gives_the_rows_of_signals(tmp_path):
    # Its columns equal signals on the whole data, which the sweep checks, and signals
    # passes the audit: the rows (computed from those columns) are engine.run's.
    path = _strategy(tmp_path, '''
        @classmethod
        def signals_batch(cls, data, sets):
            fast = sets.map(sma, data.close, sets.fast)
            slow = sets.map(sma, data.close, sets.slow)
            entries, exits = crossings(fast, slow)
            if len(data) < 300:      # reads how much data there is: the future's length
                entries = ~entries
            return Signals(entries=entries, exits=exits)
    ''')
    data = random_walk(300, seed=3)
    batched._AUDITED.clear()
    before = dict(batched.COUNTS)
    frame = engine.sweep(path, GRID, data=data, n_jobs=1, progress=False)
    assert batched.COUNTS["signals_batch"] > before["signals_batch"]
    assert frame["error"].is_null().all()
    (tmp_path / "plain").mkdir()
    plain = engine.sweep(_strategy(tmp_path / "plain", ""), GRID, data=data, n_jobs=1,
                         progress=False)
    assert frame.equals(plain, null_equal=True)


def test_a_leaking_strategy_with_a_hook_still_gets_look_ahead_errors(tmp_path):
    path = tmp_path / "leaky.py"
    path.write_text(textwrap.dedent('''
        import numpy as np

        from engine import Signals, Strategy, param


        class Leaky(Strategy):
            hold: int = param(1, min=1)

            def signals(self, data):
                close = np.asarray(data.close, dtype=float)
                entries = np.append(close[1:], close[-1]) > close     # tomorrow's close
                return Signals(entries=entries, exits=np.roll(entries, self.hold))

            @classmethod
            def signals_batch(cls, data, sets):
                close = np.asarray(data.close, dtype=float)
                entries = np.append(close[1:], close[-1]) > close
                entries = np.repeat(entries[:, None], len(sets), axis=1)
                exits = np.stack([np.roll(entries[:, 0], h) for h in sets.hold], axis=1)
                return Signals(entries=entries, exits=exits)
    '''))
    batched._AUDITED.clear()
    frame = engine.sweep(path, {"hold": [1, 2, 3, 4]}, data=random_walk(300, seed=3),
                         n_jobs=1, progress=False)
    assert all(e and "reads the future" in e for e in frame["error"].to_list())


def test_sets_whose_own_signals_raise_get_their_own_error_rows(tmp_path):
    # signals raises for slow=13; the hook gives ordinary columns for it. The check of
    # the hook runs that set's own signals, which raise: the per-set path gives its row.
    path = tmp_path / "picky.py"
    path.write_text(BASE.replace(
        "    def signals(self, data):\n",
        "    def signals(self, data):\n"
        "        if self.slow == 13:\n"
        "            raise RuntimeError('13 is unlucky')\n") + textwrap.indent(
        textwrap.dedent('''
        @classmethod
        def signals_batch(cls, data, sets):
            fast = sets.map(sma, data.close, sets.fast)
            entries, exits = crossings(fast, sets.map(sma, data.close, sets.slow))
            return Signals(entries=entries, exits=exits)
    '''), "    "))
    frame = engine.sweep(path, {"fast": [2, 3], "slow": [10, 13]}, data=random_walk(300, seed=5),
                         n_jobs=1, progress=False)
    errors = frame["error"].to_list()
    assert [e is not None for e in errors] == [False, True, False, True]
    assert "13 is unlucky" in errors[1] and "13 is unlucky" in errors[3]


def test_crossings_of_columns_stored_by_column_equal_the_row_layout():
    rng = np.random.default_rng(6)
    a = np.asfortranarray(rng.standard_normal((250, 7)))
    b = np.asfortranarray(rng.standard_normal((250, 7)))
    a[3::11] = b[3::11]                          # ties
    a[:20, 2] = np.nan                           # a warm-up
    up, down = crossings(a, b)
    c_up, c_down = crossings(np.ascontiguousarray(a), np.ascontiguousarray(b))
    assert np.array_equal(up, c_up) and np.array_equal(down, c_down)
    s_up, _ = crossings(a, 0.0)
    assert np.array_equal(s_up, crossings(np.ascontiguousarray(a), 0.0)[0])


def test_the_cli_says_a_hook_fell_back_and_still_exits_0(tmp_path, capsys):
    # every row is there (signals ran per set): a notice, not an incomplete sweep
    from engine.cli import main

    path = _strategy(tmp_path, '''
        @classmethod
        def signals_batch(cls, data, sets):
            raise ValueError("not today")
    ''')
    code = main(["sweep", str(path), "--grid", "fast=2,3", "--grid", "slow=10,20",
                 "--start", "2020-01-01", "--data", "datasets/sp500_daily.parquet",
                 "--jobs", "1"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "Cross.signals_batch raised ValueError: not today" in err
    assert "error:" not in err
