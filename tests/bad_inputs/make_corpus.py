"""Write the binary members of the bad-input corpus (Parquet, gzip, non-UTF-8 text)
from good_bars.csv.

The text members (CSV files, strategy files) are written by hand; the files this
script makes cannot be, so it is kept beside them and is deterministic: the same
pyarrow version writes the same bytes. Run it from anywhere::

    python tests/bad_inputs/make_corpus.py

``tests/test_bad_inputs.py`` regenerates the files into a temporary folder and
checks that the committed ones hold the same tables, so the two never drift apart.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent


def good_table() -> pa.Table:
    """The eight clean AAPL bars every broken file is derived from."""
    return pcsv.read_csv(HERE / "good_bars.csv")


def _replace(table: pa.Table, name: str, values, type_=None) -> pa.Table:
    index = table.column_names.index(name)
    return table.set_column(index, name, pa.array(values, type=type_))


def corpus_tables() -> dict[str, pa.Table]:
    """File name -> the table written to it as Parquet."""
    good = good_table()
    close = good.column("close").to_pylist()
    nan_close = list(close)
    nan_close[2] = float("nan")  # row 3, 2024-01-04
    # ts stored as numbers (20240102), as exported by some spreadsheets and databases
    numeric_ts = [int(d.strftime("%Y%m%d")) for d in good.column("ts").to_pylist()]
    # prices stored as text with a currency suffix in one row
    text_close = [f"{c:.2f}" for c in close]
    text_close[4] = f"{close[4]:.2f} USD"  # row 5, 2024-01-08
    # every price stored as text, all of them numbers: read, with a warning
    text_prices = good
    for name in ("open", "high", "low", "close"):
        text_prices = _replace(text_prices, name,
                               [f"{v:.2f}" for v in good.column(name).to_pylist()], pa.string())
    # prices as text with 'n/a' for a close, which cannot be missing
    na_close = [f"{c:.2f}" for c in close]
    na_close[3] = "n/a"  # row 4, 2024-01-05
    # volume as uint64 with 2**64 - 1, a missing-value marker no float64 holds exactly
    huge_volume = [int(v) for v in good.column("volume").to_pylist()]
    huge_volume[5] = 2**64 - 1  # row 6, 2024-01-09
    return {
        "nan_close.parquet": _replace(good, "close", nan_close, pa.float64()),
        "numeric_ts.parquet": _replace(good, "ts", numeric_ts, pa.int64()),
        "string_price.parquet": _replace(good, "close", text_close, pa.string()),
        "text_prices.parquet": text_prices,
        "na_close_text.parquet": _replace(good, "close", na_close, pa.string()),
        "huge_volume.parquet": _replace(good, "volume", huge_volume, pa.uint64()),
    }


def write_corpus(folder: Path) -> list[Path]:
    """Write every generated member into ``folder``; return the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, table in corpus_tables().items():
        path = folder / name
        pq.write_table(table, path, compression="snappy")
        written.append(path)
    # The first half of a valid Parquet file: a download or copy that stopped early.
    sink = pa.BufferOutputStream()
    pq.write_table(good_table(), sink, compression="snappy")
    whole = sink.getvalue().to_pybytes()
    truncated = folder / "truncated.parquet"
    truncated.write_bytes(whole[: len(whole) // 2])
    written.append(truncated)
    # A gzip-compressed CSV whose name lost its .gz ending; mtime=0 keeps it byte-stable.
    gzipped = folder / "gzipped_without_gz.csv"
    gzipped.write_bytes(gzip.compress((HERE / "good_bars.csv").read_bytes(), mtime=0))
    written.append(gzipped)
    # Windows-1252 exports (Excel's plain "CSV"): a column name, then a symbol, not UTF-8.
    lines = (HERE / "good_bars.csv").read_text(encoding="utf-8").splitlines()
    header = [lines[0] + ",Umsatz (€)"] + [f"{line},{i * 1000}"
                                           for i, line in enumerate(lines[1:], 1)]
    symbol = list(lines)
    symbol[3] = symbol[3].replace("AAPL", "NESTLÉ")  # row 3, 2024-01-04
    for name, rows in (("cp1252_header.csv", header), ("cp1252_symbol.csv", symbol)):
        path = folder / name
        path.write_bytes(("\n".join(rows) + "\n").encode("cp1252"))
        written.append(path)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE
    for path in write_corpus(target):
        print(path)
