"""Row ids and hash splits through mlspec.ml.data (issue 14 §1): load_source gives each kept row its id from the
source's key (or its feature and label columns) with the rows read and dropped, split assigns by id, a holdout is
the test split, and the ids travel in the prepared npz."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlspec.errors import DataError
from mlspec.ml.data import Dataset, load_source, split
from mlspec.ml.splits import hash_assign, read_splits, row_ids, splits_parquet, unseen_training_rows

Reader = Callable[[str], bytes]


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


def write(tmp_path: Path, name: str, frame: pd.DataFrame) -> str:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path.as_uri()


def load(uri: str, read: Reader, *, key=None, features=None, **kwargs):
    features = features or ["Year", "Weight_in_lbs"]
    return load_source(uri, fmt=None, features=features, label="Origin", read_bytes=read, key=key, **kwargs)


def test_ids_come_from_the_key_columns_of_the_source_even_when_they_are_no_feature(
    tmp_path: Path, read_file_uri: Reader
) -> None:
    frame = cars(20)
    frame.loc[3, "Origin"] = None  # no label: dropped, and its id with it
    frame.loc[5, "Weight_in_lbs"] = None
    loaded = load(
        write(tmp_path, "cars.csv", frame), read_file_uri, key=["Name", "Year"],
        features={"Year": "integer", "Weight_in_lbs": {"type": "number", "missing": "drop_row"}},
    )
    assert loaded.rows_read == 20
    assert dict(loaded.dropped) == {"no label": 1, "missing in Weight_in_lbs (drop_row)": 1}
    kept = frame.drop(index=[3, 5])
    assert loaded.row_ids.dtype == np.uint64 and len(loaded.row_ids) == len(loaded.x) == 18
    np.testing.assert_array_equal(loaded.row_ids, row_ids(kept, ["Name", "Year"]))
    with pytest.raises(DataError, match="data.split.key names Model, which the data has not"):
        load(write(tmp_path, "cars.csv", frame), read_file_uri, key=["Model"])


def test_without_a_key_an_unrelated_new_column_moves_no_row(tmp_path: Path, read_file_uri: Reader) -> None:
    v1 = cars(30)
    v2 = v1.assign(Comment="checked")  # a column the model does not use
    first = load(write(tmp_path, "v1.csv", v1), read_file_uri)
    second = load(write(tmp_path, "v2.csv", v2), read_file_uri)
    np.testing.assert_array_equal(first.row_ids, second.row_ids)
    # the feature and label columns are the row: another weight is another row
    third = load(write(tmp_path, "v3.csv", v1.assign(Weight_in_lbs=v1["Weight_in_lbs"] / 2.2)), read_file_uri)
    assert not np.intersect1d(first.row_ids, third.row_ids).size


def test_array_data_has_ids_and_no_key(read_file_uri: Reader) -> None:
    iris = load_source("builtin:iris", fmt=None, features=None, label=None, read_bytes=read_file_uri)
    assert iris.rows_read == 150 and dict(iris.dropped) == {}
    assert iris.row_ids.dtype == np.uint64 and len(iris.row_ids) == 150
    with pytest.raises(DataError, match="array data without named columns; remove data.split.key"):
        load_source("builtin:iris", fmt=None, features=None, label=None, read_bytes=read_file_uri, key=["a"])


def test_a_growing_table_keeps_its_test_rows_out_of_the_first_versions_training(
    tmp_path: Path, read_file_uri: Reader
) -> None:
    """The cars story through load_source and split: run 2 appends rows and reorders the file."""
    v1 = cars(300)
    v2 = pd.concat([v1.sample(frac=1.0, random_state=1), cars(100, start=300)], ignore_index=True)
    key = ["Name", "Year"]
    shares = {"validation": 0.1, "test": 0.2, "seed": 42, "stratify": True}
    first = split(*load(write(tmp_path, "v1.csv", v1), read_file_uri, key=key).splittable, **shares)
    second = split(*load(write(tmp_path, "v2.csv", v2), read_file_uri, key=key).splittable, **shares)
    assert len(second.ids_test) and not np.intersect1d(second.ids_test, first.ids_train).size
    for before, after in ((first.ids_train, second.ids_train), (first.ids_val, second.ids_val),
                          (first.ids_test, second.ids_test)):  # fmt: skip
        assert set(before.tolist()) <= set(after.tolist())
    # the rows beside the ids are the rows of those ids: a test row of run 2 is the car its id names
    by_id = dict(zip(row_ids(v2, key).tolist(), v2["Weight_in_lbs"].tolist(), strict=True))
    assert second.x_test["Weight_in_lbs"].tolist() == [by_id[i] for i in second.ids_test.tolist()]
    # today's random split re-draws: run 2's test rows include rows run 1 trained on
    old = split(*load(write(tmp_path, "v1.csv", v1), read_file_uri, key=key).splittable, **shares, method="random")
    new = split(*load(write(tmp_path, "v2.csv", v2), read_file_uri, key=key).splittable, **shares, method="random")
    assert np.intersect1d(new.ids_test, old.ids_train).size


def test_method_random_is_todays_seeded_split(read_file_uri: Reader) -> None:
    from sklearn.model_selection import train_test_split

    loaded = load_source("builtin:iris", fmt=None, features=None, label=None, read_bytes=read_file_uri)
    dataset = split(*loaded.splittable, validation=0.15, test=0.25, seed=7, stratify=True, method="random")
    rows = np.arange(150)
    rest, test_rows = train_test_split(rows, test_size=0.25, random_state=7, stratify=loaded.y)
    train_rows, val_rows = train_test_split(rest, test_size=0.15 / 0.75, random_state=7, stratify=loaded.y[rest])
    for x, ids, chosen in ((dataset.x_train, dataset.ids_train, train_rows), (dataset.x_val, dataset.ids_val, val_rows),
                           (dataset.x_test, dataset.ids_test, test_rows)):  # fmt: skip
        np.testing.assert_array_equal(x, loaded.x[chosen])
        np.testing.assert_array_equal(ids, loaded.row_ids[chosen])


def test_hash_splits_follow_the_ids_and_ignore_seed_and_stratify(read_file_uri: Reader) -> None:
    loaded = load_source("builtin:iris", fmt=None, features=None, label=None, read_bytes=read_file_uri)
    a = split(*loaded.splittable, validation=0.1, test=0.2, seed=1, stratify=True)
    b = split(*loaded.splittable, validation=0.1, test=0.2, seed=2, stratify=False)
    for name in ("ids_train", "ids_val", "ids_test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    codes = hash_assign(loaded.row_ids, validation=0.1, test=0.2)
    np.testing.assert_array_equal(a.ids_test, loaded.row_ids[codes == 2])
    np.testing.assert_array_equal(a.x_val, loaded.x[codes == 1])
    assert len(a.ids_train) + len(a.ids_val) + len(a.ids_test) == 150
    # without ids (a caller that split its own arrays) the ids are computed the same way
    direct = split(loaded.x, loaded.y, loaded.class_names, validation=0.1, test=0.2, seed=1, stratify=True)
    np.testing.assert_array_equal(direct.ids_test, a.ids_test)


def test_a_share_the_hash_leaves_empty_is_an_error_that_says_what_to_do() -> None:
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    y = np.array([0, 1, 0])
    ids = np.array([2**63, 2**63 + 1, 2**63 + 2], dtype=np.uint64)  # all at 0.5: train
    with pytest.raises(DataError, match=r"put none of the 3 rows in the test split \(data.split.test: 0.2\).*"
                                        r"use data.split.method: random or add rows"):  # fmt: skip
        split(x, y, ("a", "b"), (), (), "", ids, validation=0.0, test=0.2, seed=0, stratify=False)
    with pytest.raises(DataError, match="none of the 3 rows in the validation split"):
        split(x, y, ("a", "b"), (), (), "", ids, validation=0.1, test=0.0, seed=0, stratify=False)
    # a share of 0 may be empty
    dataset = split(x, y, ("a", "b"), (), (), "", ids, validation=0.0, test=0.0, seed=0, stratify=False)
    assert len(dataset.x_train) == 3 and dataset.x_val.shape == (0, 2)


def test_a_holdout_is_the_test_split_and_its_rows_leave_the_source(tmp_path: Path, read_file_uri: Reader) -> None:
    source = cars(200)
    holdout_frame = pd.concat([source.iloc[:10], cars(30, start=1000)], ignore_index=True)  # 10 rows in both
    holdout_frame = holdout_frame[holdout_frame["Origin"] != "Europe"]  # fewer classes than the source
    key = ["Name", "Year"]
    loaded = load(write(tmp_path, "source.csv", source), read_file_uri, key=key)
    holdout = load(write(tmp_path, "holdout.csv", holdout_frame), read_file_uri, key=key)
    assert holdout.class_names == ("Japan", "USA") and loaded.class_names == ("Europe", "Japan", "USA")
    dataset = split(*loaded.splittable, validation=0.1, test=0.2, seed=0, stratify=True, holdout=holdout)
    pd.testing.assert_frame_equal(dataset.x_test, holdout.x)
    np.testing.assert_array_equal(dataset.ids_test, holdout.row_ids)
    # the holdout's classes are the source's class indices: Japan is 1 here, 0 in the holdout alone
    names = np.array(dataset.class_names)[dataset.y_test]
    assert names.tolist() == holdout_frame["Origin"].tolist()
    overlap = int(np.isin(loaded.row_ids, holdout.row_ids).sum())
    assert overlap == int((holdout_frame.index < 10).sum()) > 0
    assert len(dataset.x_train) + len(dataset.x_val) == 200 - overlap
    assert not np.intersect1d(np.concatenate([dataset.ids_train, dataset.ids_val]), dataset.ids_test).size
    # validation stays a share of the source's rows; no source row is in test
    codes = hash_assign(loaded.row_ids, validation=0.1, test=0.0)
    kept = ~np.isin(loaded.row_ids, holdout.row_ids)
    np.testing.assert_array_equal(dataset.ids_val, loaded.row_ids[kept & (codes == 1)])
    # random splits take the holdout the same way
    randomly = split(*loaded.splittable, validation=0.1, test=0.2, seed=0, stratify=True, holdout=holdout,
                     method="random")
    assert len(randomly.x_train) + len(randomly.x_val) == 200 - overlap and len(randomly.x_test) == len(holdout.x)


def test_a_holdout_with_a_class_or_columns_the_source_lacks_is_refused(tmp_path: Path, read_file_uri: Reader) -> None:
    source = cars(60)
    loaded = load(write(tmp_path, "source.csv", source[source["Origin"] != "Europe"]), read_file_uri)
    with pytest.raises(DataError, match="evaluation.holdout has classes the training data has not.*Europe"):
        split(*loaded.splittable, validation=0.1, test=0.2, seed=0, stratify=True,
              holdout=load(write(tmp_path, "h.csv", cars(20, start=500)), read_file_uri))  # fmt: skip
    other = load(write(tmp_path, "h2.csv", source.assign(Year=source["Year"].astype(str) + "y")), read_file_uri,
                 features={"Year": "category", "Weight_in_lbs": "number"})  # fmt: skip
    with pytest.raises(DataError, match="evaluation.holdout's columns differ from the training data's.*Year"):
        split(*loaded.splittable, validation=0.1, test=0.2, seed=0, stratify=True, holdout=other)


def test_the_ids_travel_in_the_npz_and_an_older_npz_loads_without_them(read_file_uri: Reader) -> None:
    loaded = load_source("builtin:iris", fmt=None, features=None, label=None, read_bytes=read_file_uri)
    dataset = split(*loaded.splittable, validation=0.1, test=0.2, seed=0, stratify=True)
    payload = dataset.to_npz_bytes()
    back = Dataset.from_npz_bytes(payload)
    for name in ("ids_train", "ids_val", "ids_test", "content_ids_train", "content_ids_val", "content_ids_test"):
        assert getattr(back, name).dtype == np.uint64 and len(getattr(back, name))
        np.testing.assert_array_equal(getattr(back, name), getattr(dataset, name))
    with np.load(io.BytesIO(payload)) as npz:
        older = {key: npz[key] for key in npz.files if not key.startswith(("ids_", "content_ids_"))}
    buffer = io.BytesIO()
    np.savez(buffer, **older)
    before = Dataset.from_npz_bytes(buffer.getvalue())
    assert before.ids_train.dtype == np.uint64 and before.ids_train.shape == (0,) and before.ids_test.shape == (0,)
    np.testing.assert_array_equal(before.x_test, dataset.x_test)


def splits_of(loaded) -> tuple[Dataset, bytes]:
    dataset = split(*loaded.splittable, validation=0.1, test=0.2, seed=0, stratify=True)
    return dataset, splits_parquet(dataset, "sha256:x")


@pytest.mark.parametrize("key", [["Name", "Year"], None])
def test_rows_resent_with_a_value_changed_are_unseen_training_rows_under_a_key_too(
    tmp_path: Path, read_file_uri: Reader, key: list[str] | None
) -> None:
    """The unit change story with data.split.key: kg copies of existing cars keep their key (row id, split) but
    are content production never trained on; unchanged rows are not new."""
    v1 = cars(300).assign(Weight_in_lbs=lambda f: f["Weight_in_lbs"].clip(2100, 4400))  # in kg: below 2000
    features = ["Year", "Weight_in_lbs"]
    first, reference = splits_of(load(write(tmp_path, "v1.csv", v1), read_file_uri, key=key, features=features))
    copies = v1.iloc[::6].head(40).assign(Weight_in_lbs=lambda f: (f["Weight_in_lbs"] * 0.4536).round())
    restated = v1.copy()
    restated.loc[restated.index[1::10], "Weight_in_lbs"] = (restated["Weight_in_lbs"] * 0.4536).round()
    for v2 in (pd.concat([v1, copies], ignore_index=True), restated):
        second, this_run = splits_of(load(write(tmp_path, "v2.csv", v2), read_file_uri, key=key, features=features))
        unseen = unseen_training_rows(this_run, reference)
        assert unseen.shape == (len(second.x_train),)
        in_kg = second.x_train["Weight_in_lbs"].to_numpy() < 2000
        assert in_kg.sum() > 10
        np.testing.assert_array_equal(unseen, in_kg)
        if key is not None:  # same key, same row id and split: the row id alone would call none of them new
            assert not np.isin(second.ids_train, first.ids_train, invert=True).any()


def test_splits_parquet_lists_the_training_rows_in_x_train_order(tmp_path: Path, read_file_uri: Reader) -> None:
    frame = cars(200)
    for key in (["Name", "Year"], None):
        dataset, data = splits_of(load(write(tmp_path, "cars.csv", frame), read_file_uri, key=key))
        listed = read_splits(data)
        train = listed[listed["split"] == "train"]
        assert listed.index[listed["split"] == "train"].tolist() == list(range(len(dataset.x_train)))
        np.testing.assert_array_equal(train["row_id"].to_numpy(), dataset.ids_train)
        # each content id is the training row's own: its feature and label cells, as load_source hashed them
        labels = np.asarray(dataset.class_names, dtype=object)[dataset.y_train]
        np.testing.assert_array_equal(train["content_id"].to_numpy(),
                                      row_ids(dataset.x_train.assign(Origin=labels), None))  # fmt: skip
        if key is None:
            np.testing.assert_array_equal(train["content_id"].to_numpy(), train["row_id"].to_numpy())


def test_a_table_split_needs_load_sources_row_ids_and_an_array_gets_them_as_load_source_does(
    tmp_path: Path, read_file_uri: Reader
) -> None:
    loaded = load(write(tmp_path, "cars.csv", cars(50)), read_file_uri)
    with pytest.raises(ValueError, match="a table's row ids come from load_source"):
        split(loaded.x, loaded.y, loaded.class_names, loaded.feature_names, loaded.columns, validation=0.1,
              test=0.2, seed=0, stratify=False)  # fmt: skip
    iris = load_source("builtin:iris", fmt=None, features=None, label=None, read_bytes=read_file_uri)
    direct = split(iris.x, iris.y, iris.class_names, validation=0.1, test=0.2, seed=0, stratify=False)
    through = split(*iris.splittable, validation=0.1, test=0.2, seed=0, stratify=False)
    for name in ("ids_train", "ids_test", "content_ids_train", "content_ids_test"):
        np.testing.assert_array_equal(getattr(direct, name), getattr(through, name))


def test_a_regression_split_of_one_row_is_an_error_not_a_nan_score() -> None:
    """The probe's 8-row cars table: 1 validation row and 1 test row, and r2 of one row is NaN, which died in
    Airflow's XCom push with no mlspec message. prepare_data says what to do instead."""
    x = np.arange(16, dtype=np.float32).reshape(8, 2)
    y = np.linspace(10.0, 30.0, 8).astype(np.float32)
    with pytest.raises(DataError, match=r"the test split has 1 row: a regression cannot be scored on one row \(r2 "
                                        r"is not defined\); add rows, or raise its share in data.split \(of 8 rows\)"):  # fmt: skip
        split(x, y, (), validation=0.0, test=0.125, seed=0, stratify=False, method="random", task="regression")
    dataset = split(x, y, (), validation=0.0, test=0.25, seed=0, stratify=False, method="random", task="regression")
    assert len(dataset.y_test) == 2
