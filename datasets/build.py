"""Rebuild the bundled Parquet datasets from the shared source CSVs.

Usage::

    python datasets/build.py ../shared/datasets

Every output file is written next to this script, in ``datasets/``. The build is
deterministic: rows are sorted, the column order is fixed, no wall-clock time is
stored, and the pyarrow Parquet writer is always called with the same options,
so a rerun on the same sources produces byte-identical files.

Bar files use the engine's bar schema: ``ts`` (date32), ``symbol`` (string),
``open, high, low, close, volume`` (float64), then any extra float64 columns.
Feed files (non-bar series) hold ``ts`` and named value columns. Missing values in
float columns are stored as NaN, never as Parquet nulls.

See ``datasets/README.md`` for the provenance, licence and transformations of
every file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

OUT_DIR = Path(__file__).resolve().parent

#: Source files, relative to SOURCE_DIR.
SOURCES = {
    "sp500": "sp500-long/GSPC_stitched_1927_2026.csv",
    "vix": "vix/vix-daily.csv",
    "fear_greed": "cnn-fear-greed/fear-greed.csv",
    "hy_oas": "hy-oas/BAMLH0A0HYM2_1996_2026.csv",
    "skew": "market-base/cboe__volatility.csv",
    "short_interest": "short-interest/us_short_interest_2020-11-30_to_2021-06-30.csv",
    "universe": "short-interest/universe/prices_2020-08_2021-09.csv.gz",
    "btc": "crypto/btc_daily_binance_btcusdt.csv",
    "crypto_fear_greed": "crypto/crypto_fear_greed_alternative_me.csv",
}

BAR_COLUMNS = ("ts", "symbol", "open", "high", "low", "close", "volume")
F64 = pa.float64()
NAN = float("nan")


class BuildError(Exception):
    """A missing input or a source file that breaks an invariant of the output."""


# --------------------------------------------------------------------------- I/O


def _source(source_dir: Path, key: str) -> Path:
    """Return the path of one source file, or raise if it is missing.

    Parameters
    ----------
    source_dir : pathlib.Path
        The shared datasets directory given on the command line.
    key : str
        A key of :data:`SOURCES`.

    Returns
    -------
    pathlib.Path
        The existing source file.

    Raises
    ------
    BuildError
        If the file does not exist.
    """
    path = source_dir / SOURCES[key]
    if not path.is_file():
        raise BuildError(f"missing source file for {key!r}: {path}")
    return path


def _read_csv(path: Path, types: dict[str, pa.DataType]) -> pa.Table:
    """Read the given columns of a CSV file with fixed types.

    Parameters
    ----------
    path : pathlib.Path
        CSV file, optionally gzip-compressed (detected from the ``.gz`` suffix).
    types : dict of str to pyarrow.DataType
        Columns to read and their types. Other columns are ignored.

    Returns
    -------
    pyarrow.Table
        The columns in the order of ``types``. Empty fields are nulls.

    Raises
    ------
    BuildError
        If a column is missing or a value cannot be parsed.
    """
    try:
        table = pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(
                column_types=types,
                include_columns=list(types),
                strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, KeyError) as exc:
        raise BuildError(f"cannot read {path}: {exc}") from exc
    return table


def _f64(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Cast to float64 and turn nulls into NaN.

    Parameters
    ----------
    values : pyarrow.Array or pyarrow.ChunkedArray
        Numeric values, possibly with nulls.

    Returns
    -------
    pyarrow.Array
        A float64 array without nulls.
    """
    arr = pc.cast(values, F64)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return pc.fill_null(arr, NAN)


def _write(table: pa.Table, name: str, metadata: dict[bytes, bytes] | None = None) -> Path:
    """Write a table to ``datasets/<name>`` reproducibly.

    Parameters
    ----------
    table : pyarrow.Table
        The final table: sorted, columns in their final order.
    name : str
        Output file name.
    metadata : dict of bytes to bytes, optional
        Key-value metadata the engine reads (``engine.documented_gaps``: missing
        values this README documents, which the loader then does not warn about).

    Returns
    -------
    pathlib.Path
        The written file.

    Notes
    -----
    zstd level 19, dictionary encoding for string columns only, one row group per
    2**20 rows, no key-value metadata besides the Arrow schema and ``metadata``.
    The file is written to a temporary name and renamed, so readers never see a
    partial file.
    """
    table = table.replace_schema_metadata(metadata).combine_chunks()
    strings = [f.name for f in table.schema if pa.types.is_string(f.type)]
    path = OUT_DIR / name
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(
        table,
        tmp,
        compression="zstd",
        compression_level=19,
        use_dictionary=strings,
        row_group_size=1 << 20,
        write_statistics=True,
        data_page_version="2.0",
    )
    os.replace(tmp, path)
    return path


# ------------------------------------------------------------------ bar helpers


def _bars(columns: dict[str, pa.Array], symbol: str | None = None) -> pa.Table:
    """Assemble a bar table in the engine's column order, sorted by (ts, symbol).

    Parameters
    ----------
    columns : dict of str to pyarrow.Array
        ``ts``, ``open, high, low, close, volume``, optionally ``symbol`` and
        extra numeric columns (kept after the bar columns, in the given order).
    symbol : str, optional
        Symbol for every row when ``columns`` has no ``symbol``.

    Returns
    -------
    pyarrow.Table
        The bar table.
    """
    cols = dict(columns)
    n = len(cols["ts"])
    if symbol is not None:
        cols["symbol"] = pa.array([symbol] * n, pa.string())
    data = {"ts": cols.pop("ts"), "symbol": cols.pop("symbol")}
    for name in BAR_COLUMNS[2:]:
        data[name] = _f64(cols.pop(name))
    for name, values in cols.items():
        data[name] = _f64(values)
    table = pa.table(data)
    return table.sort_by([("ts", "ascending"), ("symbol", "ascending")])


def _clamp_open(table: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Clamp ``open`` into ``[low, high]`` on the rows where it lies outside.

    Parameters
    ----------
    table : pyarrow.Table
        A bar table. NaN opens are left alone.

    Returns
    -------
    clamped : pyarrow.Table
        The table with ``open = min(max(open, low), high)``.
    changed : pyarrow.Table
        The affected rows (ts, symbol, original open, low, high, new open), for the
        build log and the README.
    """
    o, lo, hi = (table[c].to_numpy() for c in ("open", "low", "high"))
    with np.errstate(invalid="ignore"):
        bad = (o < lo) | (o > hi)
    new = np.where(bad, np.minimum(np.maximum(o, lo), hi), o)
    idx = np.flatnonzero(bad)
    changed = pa.table(
        {
            "ts": table["ts"].take(idx),
            "symbol": table["symbol"].take(idx),
            "open_source": pa.array(o[idx], F64),
            "low": pa.array(lo[idx], F64),
            "high": pa.array(hi[idx], F64),
            "open": pa.array(new[idx], F64),
        }
    )
    out = table.set_column(table.schema.get_field_index("open"), "open", pa.array(new, F64))
    return out, changed


def _check_bars(table: pa.Table, name: str) -> None:
    """Raise if a bar table breaks an invariant the engine's loader relies on.

    Checked: bar columns and types, rows strictly sorted by (ts, symbol) with no
    duplicate pair, close finite and > 0, high and low finite with high >= low,
    open and close within [low, high] where open is not NaN, volume >= 0 or NaN.

    Parameters
    ----------
    table : pyarrow.Table
        The bar table to check.
    name : str
        Output name, for messages.

    Raises
    ------
    BuildError
        On the first violated invariant.
    """
    if tuple(table.column_names[:7]) != BAR_COLUMNS:
        raise BuildError(f"{name}: columns {table.column_names} do not start with {BAR_COLUMNS}")
    for col in table.column_names[2:]:
        if table.schema.field(col).type != F64:
            raise BuildError(f"{name}: column {col} is not float64")
    ts = table["ts"].to_numpy().astype("datetime64[D]").astype(np.int64)
    sym = table["symbol"].to_numpy(zero_copy_only=False).astype(str)
    same_ts = ts[1:] == ts[:-1]
    if (ts[1:] < ts[:-1]).any() or (same_ts & (sym[1:] <= sym[:-1])).any():
        raise BuildError(f"{name}: rows not strictly sorted by (ts, symbol) or duplicated")
    o, h, lo, c, v = (table[k].to_numpy() for k in ("open", "high", "low", "close", "volume"))
    checks = {
        "close finite and > 0": np.isfinite(c) & (c > 0),
        "high/low finite, high >= low": np.isfinite(h) & np.isfinite(lo) & (h >= lo),
        "close within [low, high]": (c >= lo) & (c <= h),
        "open within [low, high] or NaN": np.isnan(o) | ((o >= lo) & (o <= h)),
        "volume >= 0 or NaN": np.isnan(v) | (v >= 0),
    }
    for label, ok in checks.items():
        if not ok.all():
            i = int(np.flatnonzero(~ok)[0])
            raise BuildError(
                f"{name}: {int((~ok).sum())} rows fail '{label}', first at "
                f"{np.datetime64(int(ts[i]), 'D')} {sym[i]}"
            )


def _check_feed(table: pa.Table, name: str) -> None:
    """Raise if a feed table is not strictly sorted by ``ts`` or holds nulls.

    Parameters
    ----------
    table : pyarrow.Table
        A feed table whose first column is ``ts``.
    name : str
        Output name, for messages.

    Raises
    ------
    BuildError
        If ``ts`` is not strictly increasing or a column has nulls.
    """
    ts = table["ts"].to_numpy().astype("datetime64[D]").astype(np.int64)
    if (ts[1:] <= ts[:-1]).any():
        raise BuildError(f"{name}: ts not strictly increasing")
    for col in table.column_names:
        if table[col].null_count:
            raise BuildError(f"{name}: column {col} has nulls")


def _log_bars(name: str, table: pa.Table, changed: pa.Table | None = None) -> None:
    """Print one summary line for a written table (and any clamped opens).

    Parameters
    ----------
    name : str
        Output file name.
    table : pyarrow.Table
        The written table.
    changed : pyarrow.Table, optional
        Rows whose open was clamped.
    """
    ts = table["ts"]
    extra = ""
    if "symbol" in table.column_names:
        extra = f", {pc.count_distinct(table['symbol']).as_py()} symbols"
    size = (OUT_DIR / name).stat().st_size
    print(
        f"{name}: {table.num_rows} rows{extra}, {pc.min(ts).as_py()} -> {pc.max(ts).as_py()}, "
        f"{size} bytes"
    )
    if changed is not None and changed.num_rows:
        print(f"  open clamped into [low, high] on {changed.num_rows} rows:")
        for row in changed.to_pylist():
            print(
                f"    {row['ts']} {row['symbol']}: open {row['open_source']} -> {row['open']} "
                f"(low {row['low']}, high {row['high']})"
            )


# ---------------------------------------------------------------------- builders


def build_sp500(source_dir: Path) -> pa.Table:
    """Build ``sp500_daily.parquet`` (S&P 500 index, symbol SPX).

    Parameters
    ----------
    source_dir : pathlib.Path
        The shared datasets directory.

    Returns
    -------
    pyarrow.Table
        The written table. Opens missing in the source (1962-1982) stay NaN; the
        ``source`` column is dropped.
    """
    t = _read_csv(
        _source(source_dir, "sp500"),
        {"Date": pa.date32(), **{k: F64 for k in ("Open", "High", "Low", "Close", "Volume")}},
    )
    table = _bars(
        {
            "ts": t["Date"],
            "open": t["Open"],
            "high": t["High"],
            "low": t["Low"],
            "close": t["Close"],
            "volume": t["Volume"],
        },
        symbol="SPX",
    )
    table, changed = _clamp_open(table)
    _check_bars(table, "sp500_daily")
    _write(table, "sp500_daily.parquet", {b"engine.documented_gaps": json.dumps(
        {"open": ["1962-01-02", "1982-04-19", "datasets/README.md, sp500_daily.parquet: "
                  "Yahoo has Open = 0 on those days; kept missing"]}).encode()})
    _log_bars("sp500_daily.parquet", table, changed)
    return table


def build_vix(source_dir: Path) -> pa.Table:
    """Build ``vix_daily.parquet`` (CBOE VIX, symbol VIX, volume NaN).

    Parameters
    ----------
    source_dir : pathlib.Path
        The shared datasets directory.

    Returns
    -------
    pyarrow.Table
        The written table, with opens outside [low, high] clamped into it.
    """
    t = _read_csv(
        _source(source_dir, "vix"),
        {"DATE": pa.date32(), **{k: F64 for k in ("OPEN", "HIGH", "LOW", "CLOSE")}},
    )
    table = _bars(
        {
            "ts": t["DATE"],
            "open": t["OPEN"],
            "high": t["HIGH"],
            "low": t["LOW"],
            "close": t["CLOSE"],
            "volume": pa.nulls(t.num_rows, F64),
        },
        symbol="VIX",
    )
    table, changed = _clamp_open(table)
    _check_bars(table, "vix_daily")
    _write(table, "vix_daily.parquet")
    _log_bars("vix_daily.parquet", table, changed)
    return table


def build_btc(source_dir: Path) -> pa.Table:
    """Build ``btc_daily.parquet`` (Binance BTCUSDT spot, volume in BTC).

    Parameters
    ----------
    source_dir : pathlib.Path
        The shared datasets directory.

    Returns
    -------
    pyarrow.Table
        The written table.
    """
    t = _read_csv(
        _source(source_dir, "btc"),
        {"date": pa.date32(), **{k: F64 for k in ("open", "high", "low", "close", "volume")}},
    )
    table = _bars(
        {"ts": t["date"], **{k: t[k] for k in BAR_COLUMNS[2:]}},
        symbol="BTCUSDT",
    )
    table, changed = _clamp_open(table)
    _check_bars(table, "btc_daily")
    _write(table, "btc_daily.parquet")
    _log_bars("btc_daily.parquet", table, changed)
    return table


def _feed(ts: pa.Array, values: dict[str, pa.Array], name: str, drop_nan: bool) -> pa.Table:
    """Assemble, check and write a feed table sorted by ``ts``.

    Parameters
    ----------
    ts : pyarrow.Array
        date32 timestamps.
    values : dict of str to pyarrow.Array
        Value columns in output order. Numeric ones become float64, strings stay.
    name : str
        Output file name.
    drop_nan : bool
        Drop rows where any numeric value is NaN or null.

    Returns
    -------
    pyarrow.Table
        The written table.
    """
    data = {"ts": ts}
    for col, arr in values.items():
        data[col] = arr if pa.types.is_string(arr.type) else _f64(arr)
    table = pa.table(data)
    if drop_nan:
        keep = None
        for col in values:
            if pa.types.is_floating(table.schema.field(col).type):
                ok = pc.invert(pc.is_nan(table[col]))
                keep = ok if keep is None else pc.and_(keep, ok)
        table = table.filter(keep)
    table = table.sort_by([("ts", "ascending")])
    _check_feed(table, name)
    _write(table, name)
    _log_bars(name, table)
    return table


def build_fear_greed(source_dir: Path) -> pa.Table:
    """Build ``fear_greed.parquet`` (CNN Fear & Greed, canonical file).

    Parameters
    ----------
    source_dir : pathlib.Path
        The shared datasets directory.

    Returns
    -------
    pyarrow.Table
        ts, fear_greed (0-100), rating. The 2020-06/07 gap stays a gap.
    """
    t = _read_csv(
        _source(source_dir, "fear_greed"),
        {"Date": pa.date32(), "Fear Greed": F64, "Rating": pa.string()},
    )
    return _feed(
        t["Date"],
        {"fear_greed": t["Fear Greed"], "rating": t["Rating"]},
        "fear_greed.parquet",
        drop_nan=False,
    )


def build_hy_oas(source_dir: Path) -> pa.Table:
    """Build ``hy_oas.parquet`` (ICE BofA US High Yield OAS, percent).

    Parameters
    ----------
    source_dir : pathlib.Path
        The shared datasets directory.

    Returns
    -------
    pyarrow.Table
        ts, hy_oas, with the empty (holiday) rows dropped.
    """
    t = _read_csv(_source(source_dir, "hy_oas"), {"date": pa.date32(), "bamlh0a0hym2": F64})
    return _feed(t["date"], {"hy_oas": t["bamlh0a0hym2"]}, "hy_oas.parquet", drop_nan=True)


def build_skew(source_dir: Path) -> pa.Table:
    """Build ``skew.parquet`` (CBOE SKEW index close).

    Parameters
    ----------
    source_dir : pathlib.Path
        The shared datasets directory.

    Returns
    -------
    pyarrow.Table
        ts, skew, with NaN rows dropped.
    """
    t = _read_csv(_source(source_dir, "skew"), {"date": pa.date32(), "SKEW": F64})
    return _feed(t["date"], {"skew": t["SKEW"]}, "skew.parquet", drop_nan=True)


def build_crypto_fear_greed(source_dir: Path) -> pa.Table:
    """Build ``crypto_fear_greed.parquet`` (alternative.me Crypto Fear & Greed).

    Parameters
    ----------
    source_dir : pathlib.Path
        The shared datasets directory.

    Returns
    -------
    pyarrow.Table
        ts, crypto_fear_greed (0-100), classification.

    Raises
    ------
    BuildError
        If the source's unix ``timestamp`` disagrees with its ``date``.
    """
    t = _read_csv(
        _source(source_dir, "crypto_fear_greed"),
        {"date": pa.date32(), "timestamp": pa.int64(), "value": F64, "classification": pa.string()},
    )
    epoch_ms = pc.cast(pc.multiply(t["timestamp"], 1000), pa.timestamp("ms"))
    from_epoch = pc.cast(epoch_ms, pa.date32())
    if not pc.all(pc.equal(from_epoch, t["date"])).as_py():
        raise BuildError("crypto fear & greed: 'timestamp' and 'date' disagree")
    return _feed(
        t["date"],
        {"crypto_fear_greed": t["value"], "classification": t["classification"]},
        "crypto_fear_greed.parquet",
        drop_nan=False,
    )


def build_short_universe(source_dir: Path) -> pa.Table:
    """Build ``short_universe_daily.parquet`` (prices for the short-interest universe).

    Parameters
    ----------
    source_dir : pathlib.Path
        The shared datasets directory.

    Returns
    -------
    pyarrow.Table
        ts, symbol, open, high, low, close (split-adjusted as of 2024-03-08, as in
        the source), volume (as-traded shares = source volume / split_factor_row,
        rounded to whole shares; NaN where the factor is unknown), split_factor
        (``split_factor_row``, NaN where unknown) and volume_adj (the source's
        split-adjusted volume, every row).
    """
    t = _read_csv(
        _source(source_dir, "universe"),
        {
            "symbol": pa.string(),
            "date": pa.date32(),
            **{k: F64 for k in ("open", "high", "low", "close")},
            "volume": pa.int64(),
            "split_factor_row": F64,
        },
    )
    factor = _f64(t["split_factor_row"]).to_numpy()
    vol_adj = _f64(t["volume"]).to_numpy()
    with np.errstate(invalid="ignore"):
        vol = np.round(vol_adj / factor)
    table = _bars(
        {
            "ts": t["date"],
            "symbol": t["symbol"],
            **{k: t[k] for k in ("open", "high", "low", "close")},
            "volume": pa.array(vol, F64),
            "split_factor": pa.array(factor, F64),
            "volume_adj": pa.array(vol_adj, F64),
        }
    )
    table, changed = _clamp_open(table)
    _check_bars(table, "short_universe_daily")
    _write(table, "short_universe_daily.parquet")
    _log_bars("short_universe_daily.parquet", table, changed)
    return table


def build_short_interest(source_dir: Path, universe: pa.Table) -> pa.Table:
    """Build ``short_interest.parquet`` for the symbols of the bundled universe.

    Parameters
    ----------
    source_dir : pathlib.Path
        The shared datasets directory.
    universe : pyarrow.Table
        The short-universe bar table; only its symbols are kept.

    Returns
    -------
    pyarrow.Table
        One row per (symbol, settlement_date), sorted by (settlement_date, symbol).

    Raises
    ------
    BuildError
        If a (symbol, settlement_date) pair is duplicated.
    """
    t = _read_csv(
        _source(source_dir, "short_interest"),
        {
            "symbol": pa.string(),
            "exchange": pa.string(),
            "shares_outstanding": F64,
            "public_float": F64,
            "short_interest_date": pa.date32(),
            "shares_sold_short": F64,
            "percent_of_float": F64,
            "first_seen_snapshot": pa.timestamp("s", tz="UTC"),
        },
    )
    symbols = pc.unique(universe["symbol"])
    t = t.filter(pc.is_in(t["symbol"], value_set=symbols))
    table = pa.table(
        {
            "symbol": t["symbol"],
            "settlement_date": t["short_interest_date"],
            "first_seen": pc.cast(t["first_seen_snapshot"], pa.timestamp("us", tz="UTC")),
            "shares_sold_short": _f64(t["shares_sold_short"]),
            "shares_outstanding": _f64(t["shares_outstanding"]),
            "public_float": _f64(t["public_float"]),
            "percent_of_float": _f64(t["percent_of_float"]),
            "exchange": t["exchange"],
        }
    ).sort_by([("settlement_date", "ascending"), ("symbol", "ascending")])
    keys = pa.table({"d": table["settlement_date"], "s": table["symbol"]})
    if keys.group_by(["d", "s"]).aggregate([]).num_rows != table.num_rows:
        raise BuildError("short interest: duplicated (symbol, settlement_date)")
    name = "short_interest.parquet"
    _write(table, name)
    size = (OUT_DIR / name).stat().st_size
    print(
        f"{name}: {table.num_rows} rows, {pc.count_distinct(table['symbol']).as_py()} symbols, "
        f"{pc.min(table['settlement_date']).as_py()} -> "
        f"{pc.max(table['settlement_date']).as_py()}, {size} bytes"
    )
    return table


# -------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Rebuild every Parquet file in ``datasets/``.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Process exit status: 0 on success, 2 on a missing or bad input.
    """
    parser = argparse.ArgumentParser(
        description="Rebuild datasets/*.parquet from the shared source CSVs."
    )
    parser.add_argument(
        "source_dir", type=Path, help="the shared datasets directory, e.g. ../shared/datasets"
    )
    args = parser.parse_args(argv)
    source_dir: Path = args.source_dir
    try:
        if not source_dir.is_dir():
            raise BuildError(f"SOURCE_DIR is not a directory: {source_dir}")
        missing = [str(source_dir / p) for p in SOURCES.values() if not (source_dir / p).is_file()]
        if missing:
            raise BuildError("missing source files:\n  " + "\n  ".join(missing))
        build_sp500(source_dir)
        build_vix(source_dir)
        build_fear_greed(source_dir)
        build_hy_oas(source_dir)
        build_skew(source_dir)
        universe = build_short_universe(source_dir)
        build_short_interest(source_dir, universe)
        build_btc(source_dir)
        build_crypto_fear_greed(source_dir)
    except BuildError as exc:
        print(f"build.py: error: {exc}", file=sys.stderr)
        return 2
    total = sum(p.stat().st_size for p in OUT_DIR.iterdir() if p.is_file())
    print(f"total size of {OUT_DIR.name}/: {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
