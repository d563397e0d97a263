"""drift.png (issue 14 §3): a real PNG for a drift report, and one for odd input instead of an exception."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from mlspec.ml import plots
from mlspec.ml.columns import Column
from mlspec.ml.drift import compare
from mlspec.ml.profile import build_profile

COLUMNS = [Column("Weight_in_lbs", "number"), Column("Origin", "category"), Column("Cylinders", "integer")]


def cars(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "Weight_in_lbs": rng.normal(2970, 850, rows),
            "Origin": pd.Series(
                rng.choice(np.array(["USA", "Japan", "Europe"], dtype=object), rows), dtype=object
            ),
            "Cylinders": rng.choice([4.0, 6.0, 8.0], rows),
        }
    )


def size(png: bytes) -> tuple[int, int]:
    from PIL import Image

    assert png.startswith(plots.PNG_SIGNATURE)
    picture = Image.open(io.BytesIO(png))
    picture.load()
    return picture.size


def test_the_drifted_columns_are_drawn_against_the_reference() -> None:
    reference = build_profile(cars(300, 1), COLUMNS)
    current = cars(320, 2)
    current.loc[300:, "Weight_in_lbs"] /= 2.20462
    current.loc[:49, "Origin"] = "Mars"
    new = np.arange(320) >= 300
    report = compare(reference, current, COLUMNS, new_rows=new, reference_version=1).to_json()
    assert report["drifted_columns"] == ["Weight_in_lbs", "Origin"]
    png = plots.drift_plot(report, reference, current, new_rows=new)
    width, height = size(png)
    assert width > height  # two panels side by side
    assert plots.drift_plot(report, reference, current, new_rows=new) == png  # deterministic bytes
    calm = compare(reference, cars(300, 1), COLUMNS).to_json()
    assert calm["drifted_columns"] == []
    assert (
        size(plots.drift_plot(calm, reference, cars(300, 1)))[0] > width
    )  # the three columns closest to drifting


def test_odd_data_draws_a_png_instead_of_raising() -> None:
    reference = build_profile(cars(300, 1), COLUMNS)
    odd = pd.DataFrame(
        {
            "Weight_in_lbs": pd.Series(["heavy", "light", None], dtype=object),  # text in a number column
            "Origin": pd.Series(["", "", ""], dtype=object),  # no values
            "Cylinders": [np.nan, np.inf, -np.inf],
        }
    )
    report = compare(reference, cars(320, 2), COLUMNS).to_json()
    for report_json, frame in (
        (report, odd),
        (report, odd.iloc[:0]),
        (report, pd.DataFrame({"Other": [1.0]})),  # no column of the report
        ({}, cars(10, 3)),
        ({"rows": [{"column": "Origin", "check": "drift", "score": "n/a"}, "garbage"]}, cars(10, 3)),
    ):
        size(plots.drift_plot(report_json, reference, frame))
    size(
        plots.drift_plot(
            report, {"columns": [{"name": "Weight_in_lbs", "type": "number", "sample": []}]}, odd
        )
    )
