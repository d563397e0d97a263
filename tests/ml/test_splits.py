"""mlspec.ml.splits: row ids that depend on a row's values only, hash splits that do not move as a table grows,
and splits.parquet (issue 14)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from mlspec.errors import DataError
from mlspec.ml.splits import (
    SPLIT_NAMES,
    array_row_ids,
    hash_assign,
    read_splits,
    row_ids,
    splits_parquet,
    unseen_training_rows,
)


def cars(count: int, start: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(start)
    return pd.DataFrame(
        {
            "Name": [f"car {i}" for i in range(start, start + count)],
            "Year": rng.integers(1970, 1983, count),
            "Weight_in_lbs": rng.normal(3000, 500, count).round(),
            "Origin": rng.choice(["USA", "Japan", "Europe"], count),
        }
    )


def test_a_number_its_float_and_its_text_are_one_cell():
    as_int = pd.DataFrame({"Name": ["a", "b"], "Year": [1970, 1971]})
    as_float = pd.DataFrame({"Name": ["a", "b"], "Year": [1970.0, 1971.0]})
    as_text = pd.DataFrame({"Name": ["a", "b"], "Year": ["1970", "1971"]})
    ids = [row_ids(frame, ["Name", "Year"]) for frame in (as_int, as_float, as_text)]
    assert ids[0].dtype == np.uint64
    np.testing.assert_array_equal(ids[0], ids[1])
    np.testing.assert_array_equal(ids[0], ids[2])
    # a gap is "" whatever its form: NaN, None, blank text
    gaps = [pd.DataFrame({"a": ["x"], "b": [value]}) for value in (np.nan, None, "  ", "")]
    assert len({int(row_ids(frame, None)[0]) for frame in gaps}) == 1
    # but a fraction is not its rounding, and the cells' order in the key matters
    assert row_ids(pd.DataFrame({"y": [1970.5]}), None)[0] != row_ids(pd.DataFrame({"y": [1970]}), None)[0]
    frame = pd.DataFrame({"a": ["x"], "b": ["y"]})
    assert row_ids(frame, ["a", "b"])[0] != row_ids(frame, ["b", "a"])[0]


def test_two_cells_are_the_same_exactly_when_their_canonical_texts_are():
    """The rule of category_text, on a column that mixes every kind of cell (object dtype), pair by pair."""
    from itertools import combinations

    from mlspec.ml.columns import category_text, is_gap

    values = [
        1970, 1970.0, "1970", "1970.0", "007", 7, 0.5, "0.5", np.nan, None, "", " ", True, "True", 1e20,
        "100000000000000000000", np.inf, "inf", -0.0, "0", "-0", 0, 1e-05, "1e-05", 0.1 + 0.2, "0.30000000000000004",
        123456789.123, "123456789.123", -3, "-3", "abc", 2.5e-300, "2.5e-300", 1e16, "1e+16", "10000000000000000",
        np.float32(0.5), np.int64(5), "5", 2**62, str(2**62), 2**64 - 1, str(2**64 - 1),
    ]
    texts = ["" if is_gap(value) else category_text(value) for value in values]
    ids = row_ids(pd.DataFrame({"c": pd.Series(values, dtype=object)}), None)
    wrong = [
        (values[i], values[j]) for i, j in combinations(range(len(values)), 2)
        if (texts[i] == texts[j]) != (ids[i] == ids[j])
    ]
    assert not wrong
    # typed columns hash as the text of their values
    typed = {
        "float": (pd.Series([1970.0, np.nan, 0.5, 1e20, -0.0, np.inf, 1e-05]),
                  pd.Series(["1970", "", "0.5", "100000000000000000000", "0", "inf", "1e-05"])),
        "int": (pd.Series([1970, 2**62, -5]), pd.Series(["1970", str(2**62), "-5"])),
        "uint": (pd.Series(np.array([5, 2**63 + 5], dtype=np.uint64)), pd.Series(["5", str(2**63 + 5)])),
        "bool": (pd.Series([True, False]), pd.Series(["True", "False"])),
        "category": (pd.Series(["a", "b", None], dtype="category"), pd.Series(["a", "b", " "])),
        "nullable": (pd.Series([1970, None], dtype="Int64"), pd.Series(["1970", None], dtype=object)),
    }
    for kind, (column, as_text) in typed.items():
        np.testing.assert_array_equal(row_ids(column.to_frame("c"), None), row_ids(as_text.to_frame("c"), None), kind)


def test_a_key_names_the_row_and_without_one_every_column_does():
    v1 = cars(50)
    v2 = v1.copy()
    v2["Weight_in_lbs"] = v2["Weight_in_lbs"] / 2.2  # same cars, the weight in kilograms
    key = ["Name", "Year"]
    np.testing.assert_array_equal(row_ids(v1, key), row_ids(v2, key))
    assert not np.intersect1d(row_ids(v1, None), row_ids(v2, None)).size
    # without a key the columns count in name order, not in the order the source holds them
    np.testing.assert_array_equal(row_ids(v1, None), row_ids(v1[list(reversed(v1.columns))], None))
    # the same values give the same id: duplicates share a split
    twice = pd.concat([v1.head(3), v1.head(3)], ignore_index=True)
    np.testing.assert_array_equal(row_ids(twice, key)[:3], row_ids(twice, key)[3:])


def test_a_key_column_the_data_lacks_is_named():
    with pytest.raises(DataError, match=r"data.split.key names Model, which the data has not; its columns are Name"):
        row_ids(cars(3), ["Name", "Model"])


def test_hash_assign_gives_the_shares_and_follows_the_id_only():
    ids = row_ids(pd.DataFrame({"n": np.arange(100_000)}), None)
    codes = hash_assign(ids, validation=0.1, test=0.2)
    assert codes.dtype == np.int8
    shares = np.bincount(codes, minlength=3) / len(codes)
    np.testing.assert_allclose(shares, [0.7, 0.1, 0.2], atol=0.01)
    # the order of the rows and the rows beside them do not matter
    order = np.random.default_rng(1).permutation(len(ids))
    np.testing.assert_array_equal(hash_assign(ids[order], validation=0.1, test=0.2), codes[order])
    # the boundaries: [0, test) test, [test, test + validation) validation
    edges = np.array([0, 2**62, 2**63, 2**64 - 1], dtype=np.uint64)  # 0, 0.25, 0.5, ~1
    assert [SPLIT_NAMES[c] for c in hash_assign(edges, validation=0.25, test=0.25)] == [
        "test", "validation", "train", "train"
    ]
    assert not hash_assign(ids, validation=0.0, test=0.0).any()


def test_a_growing_table_keeps_every_old_rows_split():
    """The cars story: run 2 appends rows; no row of run 2's test split was in run 1's training split."""
    v1 = cars(400)
    v2 = pd.concat([cars(80, start=400), v1.sample(frac=1.0, random_state=3)], ignore_index=True)  # grown, reordered
    key = ["Name", "Year"]
    ids1, ids2 = row_ids(v1, key), row_ids(v2, key)
    split1 = dict(zip(ids1.tolist(), hash_assign(ids1, validation=0.1, test=0.2).tolist(), strict=True))
    split2 = dict(zip(ids2.tolist(), hash_assign(ids2, validation=0.1, test=0.2).tolist(), strict=True))
    assert all(split2[row] == code for row, code in split1.items())
    train1 = {row for row, code in split1.items() if code == 0}
    test2 = {row for row, code in split2.items() if code == 2}
    assert test2 and not test2 & train1
    assert test2 - set(split1)  # some new rows went to test


def test_array_row_ids_hash_the_features_and_the_label():
    x = np.array([[1.0, 2.5], [1.0, 2.5], [0.0, 1.0], [-0.0, 1.0]], dtype=np.float32)
    ids = array_row_ids(x, np.array(["a", "a", "b", "b"]))
    assert ids.dtype == np.uint64
    assert ids[0] == ids[1] and ids[2] == ids[3]  # duplicates, and -0.0 is 0.0
    assert ids[0] != array_row_ids(x[:1], np.array(["b"]))[0]  # another label, another row
    np.testing.assert_array_equal(ids, array_row_ids(x.astype(np.float64), np.array(["a", "a", "b", "b"])))
    # images: the cells of a sample, whatever its shape
    images = np.arange(2 * 8 * 8, dtype=np.float32).reshape(2, 8, 8)
    np.testing.assert_array_equal(array_row_ids(images, np.array([0, 1])), array_row_ids(images.reshape(2, 64), [0, 1]))


def test_splits_parquet_lists_each_row_with_its_split_and_the_digest():
    dataset = SimpleNamespace(
        ids_train=np.array([1, 2, 3], dtype=np.uint64),
        ids_val=np.array([2**64 - 1], dtype=np.uint64),
        ids_test=np.array([5, 6], dtype=np.uint64),
    )
    frame = read_splits(splits_parquet(dataset, "sha256:abc"))
    assert list(frame.columns) == ["row_id", "split", "content_id"]
    assert frame["row_id"].dtype == np.uint64 and frame["content_id"].dtype == np.uint64
    assert frame["row_id"].tolist() == [1, 2, 3, 2**64 - 1, 5, 6]
    assert frame["split"].tolist() == ["train"] * 3 + ["validation", "test", "test"]
    # a Dataset without content ids (built by hand) writes its row ids as content ids
    assert frame["content_id"].tolist() == frame["row_id"].tolist()
    counts = {"train": 3, "validation": 1, "test": 2}
    assert frame.attrs == {"digest": "sha256:abc", "counts": counts, "content_ids": True}
    with_content = SimpleNamespace(**vars(dataset), content_ids_train=np.array([7, 8, 9], dtype=np.uint64),
                                   content_ids_val=np.array([10], dtype=np.uint64),
                                   content_ids_test=np.array([11, 12], dtype=np.uint64))  # fmt: skip
    assert read_splits(splits_parquet(with_content, "sha256:abc"))["content_id"].tolist() == [7, 8, 9, 10, 11, 12]
    # pyarrow reads it as any Parquet file: the metadata is the file's key-value metadata
    import io

    import pyarrow.parquet as pq

    metadata = pq.read_schema(io.BytesIO(splits_parquet(dataset, "sha256:abc"))).metadata
    assert metadata[b"mlspec.digest"] == b"sha256:abc"
    with pytest.raises(DataError, match="not a readable Parquet"):
        read_splits(b"not parquet")


def splits_file(split_of: dict[int, str], content_of: dict[int, int] | None = None) -> bytes:
    """splits.parquet of rows `row id -> split` (and content ids; without, a file written before content ids)."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {"row_id": pa.array(list(split_of), type=pa.uint64()), "split": pa.array(list(split_of.values()))}
    if content_of is not None:
        columns["content_id"] = pa.array([content_of[i] for i in split_of], type=pa.uint64())
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer)
    return buffer.getvalue()


def test_unseen_training_rows_are_this_runs_training_rows_the_reference_did_not_train_on_by_content():
    reference = splits_file({1: "train", 2: "train", 3: "test", 4: "validation"}, {1: 11, 2: 12, 3: 13, 4: 14})
    # this run's training rows in x_train order: row 2 restated under its key (content 22), row 1 unchanged, row 5
    # new, row 7 a new key whose content only the reference's test split held
    this_run = splits_file({2: "train", 1: "train", 6: "test", 5: "train", 7: "train"},
                           {2: 22, 1: 11, 6: 16, 5: 15, 7: 13})  # fmt: skip
    assert unseen_training_rows(this_run, reference).tolist() == [True, False, True, True]
    # a reference written before content ids: by row id
    older = splits_file({1: "train", 2: "train", 3: "test", 4: "validation"})
    assert read_splits(older).attrs["content_ids"] is False
    assert read_splits(older)["content_id"].tolist() == [1, 2, 3, 4]
    assert unseen_training_rows(this_run, older).tolist() == [False, False, True, True]


def test_row_ids_of_a_million_rows_and_five_key_columns_are_fast():
    count = 1_000_000
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "id": np.arange(count),
            "x": rng.random(count),
            "name": pd.Series(rng.integers(0, 50_000, count)).map("car {}".format),
            "year": rng.integers(1970, 1983, count).astype(float),
            "origin": rng.choice(["USA", "Japan", "Europe"], count),
        }
    )
    start = time.perf_counter()
    ids = row_ids(frame, ["id", "x", "name", "year", "origin"])
    seconds = time.perf_counter() - start
    print(f"row_ids: {count:,} rows x 5 key columns in {seconds:.2f} s")
    assert len(np.unique(ids)) == count
    assert seconds < 10  # generous: the machine is shared; the target is under 2 s
