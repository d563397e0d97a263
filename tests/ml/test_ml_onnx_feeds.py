"""onnx_predict takes named feeds (a table model: one input per column) as well as one array, and the
parity check compares text labels (a table classifier answers the class name) exactly."""

from __future__ import annotations

import numpy as np
import pytest

from mlspec.ml.onnx_export import ParityError, check_parity, onnx_predict, onnx_signature


@pytest.fixture(scope="module")
def per_column_onnx() -> bytes:
    """A scikit-learn ColumnTransformer (a number with a median fill, a one-hot category) as ONNX, with
    one input per column."""
    import pandas as pd
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder

    frame = pd.DataFrame({"size": [1.0, 2.0, np.nan, 4.0], "colour": ["red", "blue", "red", "green"]})
    transformer = ColumnTransformer([
        ("size", SimpleImputer(strategy="median"), ["size"]),
        ("colour", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["colour"]),
    ]).fit(frame)
    types = [("size", FloatTensorType([None, 1])), ("colour", StringTensorType([None, 1]))]
    return to_onnx(transformer, initial_types=types, target_opset={"": 17, "ai.onnx.ml": 3}).SerializeToString()


def test_onnx_predict_takes_one_feed_per_input(per_column_onnx: bytes) -> None:
    signature = onnx_signature(per_column_onnx)
    assert [(i["name"], i["datatype"]) for i in signature["inputs"]] == [("size", "FP32"), ("colour", "BYTES")]
    feeds = {
        "size": np.array([[np.nan], [3.0]], dtype=np.float32),
        "colour": np.array([["blue"], ["purple"]], dtype=object),  # purple: never seen, all zeros
    }
    (out,) = onnx_predict(per_column_onnx, feeds).values()
    np.testing.assert_allclose(out, [[2.0, 1.0, 0.0, 0.0], [3.0, 0.0, 0.0, 0.0]])


def test_parity_compares_text_labels_exactly() -> None:
    want = {"label": np.array(["Adelie", "Gentoo"])}
    assert check_parity(want, {"label": np.array(["Adelie", "Gentoo"], dtype=object)}, atol=0) == 0.0
    with pytest.raises(ParityError, match="'label' differs .* on 1 of 2 samples .*sample 1: Chinstrap vs Gentoo"):
        check_parity(want, {"label": np.array(["Adelie", "Chinstrap"], dtype=object)}, atol=0)
