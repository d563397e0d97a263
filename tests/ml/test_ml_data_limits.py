"""Small files that unpack to huge data fail fast with a clear message (issue 17, adversarial broken 5).

A 2.2 MB .csv.gz grew to 3.8 GB, a 3.5 MB .npz ended in MemoryError, a 2.7 MB Parquet file aborted the
process, a CSV header of 1,000,000 columns parsed for over 60 s (and a misspelled label then produced an
8.9 MB message), and 100,000 classes asked the confusion matrix for 74.5 GiB. Every file here is small.
"""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest

from mlspec.ml.data import DataError, load_source
from mlspec.spec.model import DataLimits


def load(source: str, raw: bytes, **kwargs):
    kwargs.setdefault("label", "label")
    return load_source(source, fmt=None, features=None, read_bytes=lambda _uri: raw, **kwargs)


def gz_bomb(rows_mib: int, line: bytes = b"0,0\n", header: bytes = b"a,label\n") -> bytes:
    """A multi-member gzip: the header, then rows_mib times the same compressed MiB of rows (tiny on disk)."""
    block = gzip.compress(line * ((1 << 20) // len(line)), compresslevel=9)
    return gzip.compress(header) + block * rows_mib


def test_a_csv_gz_that_unpacks_past_max_bytes_is_refused_while_reading() -> None:
    raw = gz_bomb(64)  # 64 MiB unpacked
    assert len(raw) < 200_000
    started = time.monotonic()
    with pytest.raises(DataError, match=r"data\.limits\.max_bytes \(8\.0 MiB\)") as caught:
        load("file:///d/rows.csv.gz", raw, limits=DataLimits(max_bytes=8 * 2**20))
    assert time.monotonic() - started < 15
    assert "it was not loaded" in str(caught.value) and "raise data.limits.max_bytes" in str(caught.value)


def test_a_csv_gz_stays_in_bounded_memory() -> None:
    """In a fresh process: unpacking a bomb of 1 GiB of rows with max_bytes 32 MiB never holds more than that."""
    script = textwrap.dedent(
        """
        import gzip, json, resource, sys
        from mlspec.ml.data import DataError, load_source
        from mlspec.spec.model import DataLimits
        block = gzip.compress(b"0,0\\n" * (1 << 18), compresslevel=9)
        raw = gzip.compress(b"a,label\\n") + block * 1024
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            load_source("file:///d/x.csv.gz", fmt=None, features=None, label="label",
                        read_bytes=lambda _u: raw, limits=DataLimits(max_bytes=32 * 2**20))
            message = None
        except DataError as exc:
            message = str(exc)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"grew_kib": after - before, "message": message}))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.splitlines()[-1])
    assert outcome["message"] and "max_bytes" in outcome["message"]
    assert outcome["grew_kib"] < 160 * 1024, outcome  # 32 MiB cap (+ the bytearray's copy, pandas never ran)


def test_a_csv_whose_rows_would_fill_memory_is_refused_before_parsing() -> None:
    """Unpacked 6 MiB, but 3 M rows x 3 columns are 72 MB as 8-byte numbers."""
    raw = gz_bomb(6, line=b"0,0\n", header=b"a,b,label\n")
    with pytest.raises(DataError, match=r"rows x 3 columns take about .* as 8-byte numbers"):
        load("file:///d/rows.csv.gz", raw, limits=DataLimits(max_bytes=10 * 2**20))
    plain = b"a,label\n" + b"1,0\n" * 500_000
    with pytest.raises(DataError, match="500,000 rows x 2 columns"):
        load("file:///d/rows.csv", plain, limits=DataLimits(max_bytes=4 * 2**20))


def test_a_million_column_header_is_refused_fast_with_a_short_message() -> None:
    header = ",".join(f"c{i}" for i in range(1_000_000)).encode() + b",label\n"
    raw = header + b"0," * 1_000_000 + b"1\n"
    assert len(raw) > 8_000_000
    started = time.monotonic()
    with pytest.raises(DataError) as caught:
        load("file:///d/wide.csv", raw)
    assert time.monotonic() - started < 15  # it parsed for over 60 s
    message = str(caught.value)
    assert "1,000,001 columns, more than data.limits.max_columns (10,000)" in message
    assert len(message) < 600


def test_a_misspelled_label_in_a_wide_table_quotes_a_few_short_names() -> None:
    long = "x" * 500
    header = ",".join([long] + [f"c{i}" for i in range(9_000)] + ["label"]).encode() + b"\n"
    raw = header + b",".join([b"0"] * 9_002) + b"\n"
    with pytest.raises(DataError) as caught:
        load("file:///d/wide.csv", raw, label="target")
    message = str(caught.value)
    assert "data.label 'target' is not a column of file:///d/wide.csv" in message
    assert "columns are: " + "x" * 19 + "…, c0, c1, c2, c3 ... and 8997 more" in message
    assert len(message) < 400


def _npy_header(shape: tuple[int, ...], dtype: str = "<f8") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def test_an_npz_whose_header_declares_a_huge_array_is_refused_before_loading() -> None:
    """The member is 1 KiB; its header says 50,000 x 10,000 float64 (4 GB)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.npy", _npy_header((50_000, 10_000)) + b"\0" * 1024)
        archive.writestr("y.npy", _npy_header((50_000,), "<i8") + b"\0" * 1024)
    started = time.monotonic()
    with pytest.raises(DataError, match=r"arrays x \(50000, 10000\) float64; y \(50000,\) int64 take about .* GiB"):
        load("file:///d/bomb.npz", buffer.getvalue(), label=None)
    assert time.monotonic() - started < 15


def test_a_compressed_npz_over_max_bytes_is_refused_from_its_declared_size() -> None:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x=np.zeros((2_000, 1_000)), y=np.zeros(2_000, dtype=np.int64))
    assert len(buffer.getvalue()) < 100_000
    with pytest.raises(DataError, match=r"array x unpacks to 15\.3 MiB.*max_bytes \(1\.0 MiB\)"):
        load("file:///d/x.npz", buffer.getvalue(), label=None, limits=DataLimits(max_bytes=2**20))
    x, y, _, _, *_ = load("file:///d/x.npz", buffer.getvalue(), label=None)
    assert x.shape == (2_000, 1_000) and x.dtype == np.float32


def _parquet(frame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def test_a_parquet_file_is_checked_from_its_metadata() -> None:
    import pandas as pd

    rows = pd.DataFrame({"a": np.zeros(2_000_000, dtype=np.int64), "label": np.zeros(2_000_000, dtype=np.int64)})
    raw = _parquet(rows)
    assert len(raw) < 200_000
    with pytest.raises(DataError, match=r"2,000,000 rows x 2 columns|row groups unpack to"):
        load("file:///d/t.parquet", raw, limits=DataLimits(max_bytes=8 * 2**20))
    wide = _parquet(pd.DataFrame({f"c{i}": [0.0] for i in range(30)} | {"label": [0]}))
    with pytest.raises(DataError, match=r"31 columns, more than data.limits.max_columns \(20\)"):
        load("file:///d/w.parquet", wide, limits=DataLimits(max_columns=20))


def test_repeated_text_in_parquet_stays_dictionary_encoded() -> None:
    import pandas as pd

    frame = pd.DataFrame({"a": np.arange(1000, dtype=np.float64), "label": ["setosa " * 50, "virginica"] * 500})
    x, y, class_names, _, *_ = load("file:///d/t.parquet", _parquet(frame))
    assert x.shape == (1000, 1) and sorted(set(y.tolist())) == [0, 1] and class_names[1] == "virginica"


def test_too_many_classes_is_refused_when_loading() -> None:
    raw = b"a,label\n" + b"".join(f"{i},{i}\n".encode() for i in range(1_500))
    with pytest.raises(DataError) as caught:
        load("file:///d/t.csv", raw)
    message = str(caught.value)
    assert "1,500 distinct values (0, 1, 2, 3, 4 ... and 1495 more)" in message
    assert "data.limits.max_classes (1,000)" in message and "model.task: regression" in message
    _x, _y, class_names, _, *_ = load("file:///d/t.csv", raw, limits=DataLimits(max_classes=2_000))
    assert len(class_names) == 1_500


def test_the_confusion_matrix_refuses_too_many_classes_before_allocating() -> None:
    from mlspec.ml.metrics import MetricsError, compute_metrics

    names = [str(i) for i in range(100_000)]
    labels = np.arange(100, dtype=np.int64)
    # Before: sklearn asked for 100,000 x 100,000 int64 counts (MemoryError, or the OOM killer).
    with pytest.raises(MetricsError, match=r"100,000 classes: their confusion matrix would take 74\.5 GiB"):
        compute_metrics("classification", labels, {"label": labels}, metrics=["accuracy"], class_names=names)


def test_a_confusion_matrix_plot_of_too_many_classes_is_refused_and_many_are_drawn_unlabelled() -> None:
    from mlspec.ml.plots import PlotError, confusion_matrix_png

    with pytest.raises(PlotError, match="too many"):
        confusion_matrix_png([[0]], [str(i) for i in range(5_000)])
    started = time.monotonic()
    assert confusion_matrix_png(np.eye(300, dtype=int).tolist(), [str(i) for i in range(300)]).startswith(b"\x89PNG")
    assert time.monotonic() - started < 20


def test_spec_limits_parse_and_mirror_the_schema() -> None:
    from tests.fixtures.paths import SPECS

    from mlspec.spec import SpecError, load_spec_text
    from mlspec.spec.schema import load_schema

    schema = load_schema()["properties"]["data"]["properties"]["limits"]["properties"]
    assert DataLimits.from_mapping({k: v["default"] for k, v in schema.items()}) == DataLimits()
    text = (SPECS / "iris.yaml").read_text().replace(
        "source: builtin:iris", "source: builtin:iris\n  limits: {max_bytes: 2GB, max_columns: 50, max_classes: 20}"
    )
    assert load_spec_text(text).data.limits == DataLimits(max_bytes=2 * 10**9, max_columns=50, max_classes=20)
    assert load_spec_text(text.replace("2GB", "1.5 GiB")).data.limits.max_bytes == 3 * 2**29
    for bad in ("2 GBs", "-1", "'1GB\\n'", "0"):
        with pytest.raises(SpecError, match="data.limits.max_bytes"):
            load_spec_text(text.replace("2GB", bad))


def test_prepare_data_applies_the_specs_limits(mlspec_home, tmp_path) -> None:
    from tests.fixtures.paths import SPECS

    from mlspec.operators.data import PrepareDataOperator
    from mlspec.spec import load_spec_text

    (mlspec_home / "data").mkdir()
    (mlspec_home / "data" / "t.csv").write_text("a,b,c,label\n" + "1,2,3,0\n4,5,6,1\n" * 20)
    text = (SPECS / "iris-forest.yaml").read_text()
    source = text.split("source: ", 1)[1].split("\n", 1)[0]
    text = text.replace(f"source: {source}", "source: file://data/t.csv\n  limits: {max_columns: 3}")
    prepare = PrepareDataOperator(spec=load_spec_text(text).to_dict(), task_id="prepare_data")
    with pytest.raises(DataError, match=r"4 columns, more than data.limits.max_columns \(3\)"):
        prepare.run({"run_id": "r1"})
