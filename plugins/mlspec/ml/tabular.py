"""Table models: the columns' preprocessing (gaps filled, categories encoded) fitted once on the raw
training table and carried inside the model, its save file and its ONNX graph, for every framework.

`wrap(adapter)` (what the operators use) gives a `TabularAdapter`: for a data set with `columns` (a table
source) it fits the preprocessor on the raw training table and hands the framework's own adapter (Keras,
scikit-learn, XGBoost, LightGBM: unchanged) a data set of float32 arrays [N, D] (a sparse matrix for a
model that `takes_sparse`: one-hot columns are mostly zeros); for any other data set it is a pure
pass-through. So a framework never sees a column, and a new framework gets tables for free.

The preprocessor is a scikit-learn ColumnTransformer (`build_preprocessor`), one branch per column in
feature order:
- number, integer, boolean: the fill for a gap (SimpleImputer, constant), else passed through; for a
  model that `standardizes_numbers` (a Keras network) number and integer columns are then standardized
  (StandardScaler fitted on the training rows), since a network learns badly from grams beside millimetres;
- category: the fill for a gap ("" is a gap), then one-hot (an unseen value is all zeros) or ordinal (an
  unseen value is -1). `max_categories` first folds every value but the N-1 most frequent training ones
  into one "other" value (`CategoryFolder`), which is what sklearn's `OneHotEncoder(max_categories)` does
  but skl2onnx cannot convert.
Every fill (mean, median, most frequent or constant) is computed here from the training table and given
to the imputer as a constant (`fitted_fills`): the same number is then the imputer's, the ONNX graph's
and the one input_schema.json publishes (`fill_values`), and an integer or boolean column's fill is
rounded to a whole number, since its INT64/BOOL endpoint input cannot carry a gap and the server puts
the published fill in its place.

The ONNX export (`TabularAdapter.to_onnx`) is one graph: an input per column named as the column
([-1, 1]: FP32 number, INT64 integer and BOOL boolean (each cast to float in front), STRING category),
the preprocessor through skl2onnx, then the framework's own export of the fitted model (its input
`input` [N, D]) joined behind it with onnx.compose.merge_models, the same way for every framework.
For text or integer labels (`label_datatype` BYTES or INT64) the `label` output is the class value
(a Gather over the class values); `probabilities` keeps the class order of `class_names`. `predict`
keeps answering class indices (the metrics need them); `served_outputs` maps them to the values the
endpoint answers, for the export's parity check.

The saved model is a zip (`tabular.json`, `preprocessor.joblib` and the framework's own artifact), so
`load` tells it from a plain model's bytes. joblib is a pickle: load only what this project's store holds.
Nothing here imports numpy, pandas, scikit-learn or onnx at module level (operators import it at DAG
parse time).
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlspec.ml.columns import Column, category_text, gaps, is_gap
from mlspec.ml.frameworks.base import FitReport, FrameworkAdapter, ProgressCallback, TrainingError
from mlspec.ml.frameworks.boosting import ml_opset
from mlspec.vocabulary import INPUT_NAME, OUTPUTS

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlspec.ml.data import Dataset
    from mlspec.ml.frameworks import TrainingPlan

# The members of a table model's save file.
MANIFEST = "tabular.json"
PREPROCESSOR_FILE = "preprocessor.joblib"
INNER_FILE = "model"
# The ONNX element types of the endpoint inputs, by column type.
_NUMERIC_INPUTS = {"number": "FLOAT", "integer": "INT64", "boolean": "BOOL"}
# Every name inside the merged graph but its inputs (the columns) and outputs starts with _INTERNAL.
_INTERNAL = "mlspec_"
_PREPROCESSOR_PREFIX = f"{_INTERNAL}preprocess_"
_MODEL_PREFIX = f"{_INTERNAL}model_"
_LABEL_INDEX = f"{_INTERNAL}label_index"
_CLASS_VALUES = f"{_INTERNAL}class_values"


# --------------------------------------------------------------------------- fills and the preprocessor


def fitted_fills(columns: Sequence[Column], frame: pd.DataFrame) -> dict[str, Any]:
    """The value that fills a gap in each column whose `missing` strategy fills one, from the raw
    training table (the normalized form: NaN or "" for a gap): a float for a number, a whole number
    for an integer, True/False for a boolean, a text for a category."""
    import numpy as np

    fills: dict[str, Any] = {}
    for column in columns:
        if not column.filled:
            continue
        values = frame[column.name]
        if column.type == "category":
            present = values[~gaps(values)]
            if column.missing == "constant":
                fills[column.name] = category_text(column.constant)
            else:
                fills[column.name] = _most_frequent(present.tolist()) if len(present) else ""
            continue
        present = values.dropna().to_numpy(dtype=np.float64)
        if column.missing == "constant":
            fill = float(column.constant)  # Column checked that it fits the type (True -> 1.0)
        elif not len(present):
            fill = 0.0
        elif column.missing == "mean":
            fill = float(present.mean())
        elif column.missing == "median":
            fill = float(np.median(present))
        else:
            fill = float(_most_frequent(present.tolist()))
        if column.type == "integer":
            fills[column.name] = int(np.round(fill))
        elif column.type == "boolean":
            fills[column.name] = bool(np.round(fill))
        else:
            fills[column.name] = fill
    return fills


def _most_frequent(values: list[Any]) -> Any:
    """The most frequent value, the smallest of those tied (as scikit-learn's most_frequent)."""
    from collections import Counter

    counts = Counter(values)
    most = max(counts.values())
    return min(value for value, count in counts.items() if count == most)


def build_preprocessor(
    columns: Sequence[Column], fills: Mapping[str, Any], *, sparse: bool = False, standardize: bool = False
) -> Any:
    """An unfitted ColumnTransformer over the raw table, one branch per column in feature order, whose
    output is the model's feature matrix: dense, or a sparse matrix where one-hot columns are (`sparse`,
    for a model that takes one: a million rows of a 1,000-value category would not fit in memory dense).
    `standardize` (for a network): number and integer columns are standardized after their fill."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    branches = []
    for index, column in enumerate(columns):
        steps: list[Any] = []
        if column.name in fills:
            if column.type == "category":
                steps.append(
                    SimpleImputer(missing_values="", strategy="constant", fill_value=fills[column.name])
                )
            else:
                steps.append(SimpleImputer(strategy="constant", fill_value=float(fills[column.name])))
        if standardize and column.type in ("number", "integer"):
            steps.append(StandardScaler())
        if column.type == "category":
            if column.encode == "ordinal":
                steps.append(OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1))
            else:
                if column.max_categories:
                    steps.append(_category_folder()(column.max_categories))
                steps.append(OneHotEncoder(handle_unknown="ignore", sparse_output=sparse))
        transformer = make_pipeline(*steps) if steps else "passthrough"
        # Branches are named by position: skl2onnx would rewrite a column name it finds odd.
        branches.append((f"column_{index}", transformer, [column.name]))
    return ColumnTransformer(branches, sparse_threshold=1.0 if sparse else 0.0)


def __getattr__(name: str) -> Any:
    # `CategoryFolder` is made on first use (it subclasses scikit-learn's BaseEstimator, which this module
    # cannot import at DAG parse time); pickle finds it here by name when a saved model is loaded.
    if name == "CategoryFolder":
        return _category_folder()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _category_folder() -> type:
    from collections import Counter

    import numpy as np
    from sklearn.base import BaseEstimator, TransformerMixin

    class CategoryFolder(TransformerMixin, BaseEstimator):
        """max_categories: keeps the `max_categories - 1` most frequent training values (ties: the
        smaller text first) and turns every other value, rare or never seen, into one `other` value,
        for the one-hot encoder after it. When the training data has at most `max_categories` values
        every one is kept, and an unseen value becomes `other`, which the encoder then never saw: all
        zeros, as scikit-learn's infrequent_if_exist."""

        def __init__(self, max_categories: int = 2) -> None:
            self.max_categories = max_categories

        def fit(self, x: Any, y: Any = None) -> Any:
            counts = Counter(np.asarray(x, dtype=object).ravel().tolist())
            ranked = sorted(counts, key=lambda value: (-counts[value], str(value)))
            kept = ranked if len(ranked) <= self.max_categories else ranked[: self.max_categories - 1]
            self.kept_ = [str(value) for value in kept]
            other = "other"  # a text no training value has, so that it is never mistaken for one
            while other in counts:
                other = f"_{other}"
            self.other_ = other
            return self

        def transform(self, x: Any) -> Any:
            values = np.asarray(x, dtype=object)
            kept = set(self.kept_)
            return np.where(np.isin(values, list(kept)), values, self.other_).astype(object)

    CategoryFolder.__module__, CategoryFolder.__qualname__ = __name__, "CategoryFolder"
    return CategoryFolder


def _register_folder_converter() -> None:
    """skl2onnx converts a CategoryFolder to one ai.onnx.ml LabelEncoder: each kept value maps to itself,
    every other value to `other` (its default)."""
    from skl2onnx import update_registered_converter
    from skl2onnx.common.data_types import StringTensorType

    def shape(operator: Any) -> None:
        operator.outputs[0].type = StringTensorType(operator.inputs[0].type.shape)

    def convert(scope: Any, operator: Any, container: Any) -> None:
        folder = operator.raw_operator
        container.add_node(
            "LabelEncoder",
            operator.inputs[0].full_name,
            operator.outputs[0].full_name,
            op_domain="ai.onnx.ml",
            op_version=2,
            name=scope.get_unique_operator_name("CategoryFolder"),
            keys_strings=folder.kept_,
            values_strings=folder.kept_,
            default_string=folder.other_,
        )

    update_registered_converter(_category_folder(), "MlspecCategoryFolder", shape, convert)


# --------------------------------------------------------------------------- the model


@dataclass
class TabularModel:
    """A fitted preprocessor and the framework's model behind it, with what the endpoint answers."""

    preprocessor: Any  # the fitted ColumnTransformer
    model: Any  # the framework's own model, taking the preprocessor's float32 [N, D]
    columns: tuple[Column, ...]
    class_values: tuple[str, ...]  # the class names, in index order (empty for regression)
    label_datatype: str  # Dataset.label_datatype: "" (the label answers the index), "INT64" or "BYTES"
    fills: dict[str, Any] = field(default_factory=dict)  # fitted_fills
    # The data set the model was built for and its transformed twin, so that fitting and scoring do
    # not transform the table again (not saved).
    prepared: tuple[Any, Any] | None = field(default=None, repr=False)

    def transform(self, frame: pd.DataFrame) -> Any:
        """The raw table's rows (normalized form) as the framework's model takes them: float32 [N, D], a
        scipy sparse matrix when the preprocessor was built `sparse`."""
        import numpy as np

        if not len(frame):  # an empty split (no validation data): the imputers refuse 0 rows
            width = max(part.stop for part in self.preprocessor.output_indices_.values())
            return np.zeros((0, width), dtype=np.float32)
        return _float32(self.preprocessor.transform(frame[[c.name for c in self.columns]]))


def _float32(features: Any) -> Any:
    import numpy as np
    import scipy.sparse

    return (
        features.tocsr().astype(np.float32)
        if scipy.sparse.issparse(features)
        else np.asarray(features, np.float32)
    )


def fill_values(model: Any) -> dict[str, Any]:
    """The fitted fill of each column whose gaps the model fills (input_schema.json's "fill"): the
    server puts it in place of a null in an INT64 or BOOL input, which cannot carry a gap."""
    return dict(model.fills) if isinstance(model, TabularModel) else {}


def categories(model: Any) -> dict[str, list[str]]:
    """The training values of each category column, as the encoder knows them (input_schema.json's
    "categories"); with max_categories, the kept ones (every other value is "other")."""
    if not isinstance(model, TabularModel):
        return {}
    found: dict[str, list[str]] = {}
    for index, column in enumerate(model.columns):
        if column.type != "category":
            continue
        steps = model.preprocessor.named_transformers_[f"column_{index}"].named_steps
        folder = next((step for step in steps.values() if isinstance(step, _category_folder())), None)
        if folder is not None:
            found[column.name] = list(folder.kept_)
        else:
            encoder = list(steps.values())[-1]
            found[column.name] = [str(value) for value in encoder.categories_[0]]
    return found


def class_values(model: Any) -> np.ndarray | None:
    """What the endpoint's `label` answers for each class index: the class names (BYTES) or their
    integers (INT64); None where it answers the index."""
    import numpy as np

    if not isinstance(model, TabularModel) or not model.label_datatype:
        return None
    if model.label_datatype == "INT64":
        return np.array([int(value) for value in model.class_values], dtype=np.int64)
    return np.array(model.class_values, dtype=object)


def served_outputs(model: Any, outputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`predict`'s answers as the exported graph gives them: the label as its class value where the
    endpoint answers values (text or integer labels), everything else as it is."""
    values = class_values(model)
    answers = dict(outputs)
    if values is not None and "label" in answers:
        answers["label"] = values[answers["label"]]
    return answers


def feeds(columns: Sequence[Column], frame: pd.DataFrame, fills: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The ONNX (and v2) inputs for raw rows: one [N, 1] array per column, typed as the graph's input.
    A gap (None, NaN, "") is "" for a category and NaN for a number; an integer or boolean gap takes the
    column's fill, and is a TrainingError where the column has none."""
    import numpy as np
    import pandas as pd

    inputs: dict[str, np.ndarray] = {}
    for column in columns:
        values = frame[column.name]
        if column.type == "category":
            texts = ["" if is_gap(v) else category_text(v) for v in values.tolist()]
            inputs[column.name] = np.array(texts, dtype=object).reshape(-1, 1)
            continue
        numbers = pd.to_numeric(values.where(~gaps(values)), errors="raise").astype(np.float64)
        if column.type == "number":
            inputs[column.name] = numbers.to_numpy(dtype=np.float32).reshape(-1, 1)
            continue
        if numbers.isna().any():
            if column.name not in fills:
                raise TrainingError(
                    f"column {column.name} has a missing value and no fill (its missing strategy is "
                    f"{column.missing}); an {_NUMERIC_INPUTS[column.type]} input cannot carry a gap"
                )
            numbers = numbers.fillna(float(fills[column.name]))
        dtype = np.int64 if column.type == "integer" else np.bool_
        inputs[column.name] = numbers.to_numpy().astype(dtype).reshape(-1, 1)
    return inputs


# --------------------------------------------------------------------------- ONNX


def preprocessor_onnx(model: TabularModel, *, opset: int, ml_opset: int) -> Any:
    """The preprocessor as an ONNX ModelProto: an input per column, named as the column and typed as
    the endpoint takes it, and one output, float [N, D]."""
    import onnx
    from onnx import TensorProto, helper
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    from mlspec.ml.onnx_export import ExportError  # imports numpy: not at DAG parse time

    _register_folder_converter()
    # skl2onnx names an input after its ColumnTransformer column but rewrites odd names ("a b" ->
    # "a_b"): convert under its names, then give each input its column's name (inputs keep their order).
    types = [
        (
            column.name,
            StringTensorType([None, 1]) if column.type == "category" else FloatTensorType([None, 1]),
        )
        for column in model.columns
    ]
    try:
        proto = convert_sklearn(
            model.preprocessor, initial_types=types, target_opset={"": opset, "ai.onnx.ml": ml_opset}
        )
    except Exception as exc:  # noqa: BLE001 - converter failures are many types; one clear line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(
            f"skl2onnx could not convert the columns' preprocessing at opset {opset}: {first[:500]}"
        ) from exc
    graph = proto.graph
    casts = []
    for graph_input, column in zip(list(graph.input), model.columns, strict=True):
        inner_name = graph_input.name
        if column.type in ("integer", "boolean"):
            # The endpoint takes INT64/BOOL; the preprocessor (and the training table) work in float.
            inner_name = f"{_INTERNAL}{column.name}_as_float"
            _rename_uses(graph, graph_input.name, inner_name)
            casts.append(helper.make_node("Cast", [column.name], [inner_name], to=TensorProto.FLOAT))
        elif graph_input.name != column.name:
            _rename_uses(graph, graph_input.name, column.name)
        element = (
            TensorProto.STRING
            if column.type == "category"
            else getattr(TensorProto, _NUMERIC_INPUTS[column.type])
        )
        graph_input.CopyFrom(helper.make_tensor_value_info(column.name, element, [None, 1]))
    for node in reversed(casts):
        graph.node.insert(0, node)
    onnx.checker.check_model(proto)
    return proto


def _rename_uses(graph: Any, old: str, new: str) -> None:
    for node in graph.node:
        for position, name in enumerate(node.input):
            if name == old:
                node.input[position] = new


def tabular_onnx(model: TabularModel, inner_onnx: bytes, *, task: str, opset: int) -> bytes:
    """The preprocessor's graph joined in front of the framework's own export (input `input`), the label
    mapped to class values where the endpoint answers values."""
    import onnx
    from onnx import compose, helper, numpy_helper

    from mlspec.ml.onnx_export import ExportError  # imports numpy: not at DAG parse time

    clash = [c.name for c in model.columns if c.name in OUTPUTS[task] or c.name.startswith(_INTERNAL)]
    if clash:
        raise ExportError(
            f"column {clash[0]} has the name of one of the exported model's outputs or internal values "
            f"({', '.join(OUTPUTS[task])}, {_INTERNAL}...); rename the column in the data"
        )
    inner = onnx.load_from_string(inner_onnx)
    pre = preprocessor_onnx(model, opset=opset, ml_opset=ml_opset(opset))
    # merge_models wants one version per domain. Both converters declare the lowest version whose
    # operators they used, converting for `opset`: raising either to the other's changes no operator.
    versions: dict[str, int] = {}
    for proto in (pre, inner):
        for entry in proto.opset_import:
            versions[entry.domain] = max(versions.get(entry.domain, 0), entry.version)
    for proto in (pre, inner):
        proto.ClearField("opset_import")
        proto.opset_import.extend(
            helper.make_opsetid(domain, version) for domain, version in versions.items()
        )
    pre.ir_version = inner.ir_version = max(pre.ir_version, inner.ir_version)

    pre = compose.add_prefix(pre, _PREPROCESSOR_PREFIX, rename_inputs=False)
    inner = compose.add_prefix(inner, _MODEL_PREFIX, rename_outputs=False)
    values = class_values(model)
    if values is not None:
        for output in inner.graph.output:
            if output.name == "label":
                output.name = _LABEL_INDEX
        for node in inner.graph.node:
            node.output[:] = [_LABEL_INDEX if name == "label" else name for name in node.output]
    merged = compose.merge_models(
        pre, inner, io_map=[(pre.graph.output[0].name, f"{_MODEL_PREFIX}{INPUT_NAME}")], name="mlspec_model"
    )
    if values is not None:
        graph = merged.graph
        constant = numpy_helper.from_array(values, _CLASS_VALUES)
        graph.initializer.append(constant)
        graph.node.append(helper.make_node("Gather", [_CLASS_VALUES, _LABEL_INDEX], ["label"], axis=0))
        element = onnx.TensorProto.INT64 if model.label_datatype == "INT64" else onnx.TensorProto.STRING
        outputs = [
            helper.make_tensor_value_info("label", element, [None]) if output.name == _LABEL_INDEX else output
            for output in graph.output
        ]
        graph.ClearField("output")
        graph.output.extend(outputs)
    onnx.checker.check_model(merged)
    return merged.SerializeToString()


# --------------------------------------------------------------------------- the adapter


class TabularAdapter(FrameworkAdapter):
    """A framework's adapter for table data sets (see the module docstring); any other data set, and
    any model loaded from a plain artifact, goes straight to the framework's adapter."""

    def __init__(self, inner: FrameworkAdapter) -> None:
        self.inner = inner
        self.name = inner.name
        self.artifact_name = inner.artifact_name

    def build(self, plan: TrainingPlan, dataset: Dataset) -> Any:
        if not dataset.columns:
            return self.inner.build(plan, dataset)
        fills = fitted_fills(dataset.columns, dataset.x_train)
        preprocessor = build_preprocessor(
            dataset.columns,
            fills,
            sparse=self.inner.takes_sparse(plan),
            standardize=self.inner.standardizes_numbers(plan),
        )
        x_train = preprocessor.fit_transform(dataset.x_train[[c.name for c in dataset.columns]])
        model = TabularModel(
            preprocessor=preprocessor,
            model=None,
            columns=tuple(dataset.columns),
            class_values=tuple(dataset.class_names),
            label_datatype=dataset.label_datatype,
            fills=fills,
        )
        arrays = _prepared(model, dataset, x_train=_float32(x_train))
        model.model = self.inner.build(plan, arrays)
        return model

    def fit(
        self, model: Any, plan: TrainingPlan, dataset: Dataset, on_progress: ProgressCallback | None = None
    ) -> FitReport:
        if not isinstance(model, TabularModel):
            return self.inner.fit(model, plan, dataset, on_progress)
        return self.inner.fit(model.model, plan, _prepared(model, dataset), on_progress)

    def validation_metrics(
        self, model: Any, plan: TrainingPlan, dataset: Dataset, report: FitReport
    ) -> dict[str, float]:
        if not isinstance(model, TabularModel):
            return self.inner.validation_metrics(model, plan, dataset, report)
        return self.inner.validation_metrics(model.model, plan, _prepared(model, dataset), report)

    def predict(self, model: Any, x: Any, task: str) -> dict[str, np.ndarray]:
        """Class indices as label, as for every model (see `served_outputs` for what the endpoint answers)."""
        if not isinstance(model, TabularModel):
            return self.inner.predict(model, x, task)
        return self.inner.predict(model.model, model.transform(x), task)

    def save(self, model: Any) -> bytes:
        if not isinstance(model, TabularModel):
            return self.inner.save(model)
        import joblib

        preprocessor = io.BytesIO()
        joblib.dump(model.preprocessor, preprocessor)
        manifest = {
            "columns": [column.to_json() for column in model.columns],
            "class_values": list(model.class_values),
            "label_datatype": model.label_datatype,
            "fills": model.fills,
            "model_file": self.inner.artifact_name,
        }
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(MANIFEST, json.dumps(manifest, indent=1))
            archive.writestr(PREPROCESSOR_FILE, preprocessor.getvalue())
            archive.writestr(INNER_FILE, self.inner.save(model.model))
        return buf.getvalue()

    def load(self, data: bytes) -> Any:
        if not is_tabular(data):
            return self.inner.load(data)
        import joblib

        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                manifest = json.loads(archive.read(MANIFEST))
                preprocessor = joblib.load(io.BytesIO(archive.read(PREPROCESSOR_FILE)))
                inner = archive.read(INNER_FILE)
        except Exception as exc:  # noqa: BLE001 - corrupt or truncated files: one clear line
            raise TrainingError(f"could not load the trained table model ({len(data)} bytes): {exc}") from exc
        return TabularModel(
            preprocessor=preprocessor,
            model=self.inner.load(inner),
            columns=tuple(Column.from_json(c) for c in manifest["columns"]),
            class_values=tuple(manifest["class_values"]),
            label_datatype=manifest["label_datatype"],
            fills=dict(manifest["fills"]),
        )

    def to_onnx(self, model: Any, *, task: str, opset: int, sample: Any) -> bytes:
        if not isinstance(model, TabularModel):
            return self.inner.to_onnx(model, task=task, opset=opset, sample=sample)
        inner = self.inner.to_onnx(model.model, task=task, opset=opset, sample=model.transform(sample))
        return tabular_onnx(model, inner, task=task, opset=opset)


def is_tabular(data: bytes) -> bool:
    """Whether saved model bytes are a table model's zip (a Keras file is a zip too, without MANIFEST)."""
    if not zipfile.is_zipfile(io.BytesIO(data)):
        return False
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return MANIFEST in archive.namelist()


def _prepared(model: TabularModel, dataset: Dataset, x_train: Any = None) -> Dataset:
    """The data set as the framework's model sees it: float32 [N, D] (see `TabularModel.transform`), no
    columns; `x_train`: the training rows already transformed."""
    if model.prepared is not None and model.prepared[0] is dataset:
        return model.prepared[1]
    arrays = dataclasses.replace(
        dataset,
        x_train=model.transform(dataset.x_train) if x_train is None else x_train,
        x_val=model.transform(dataset.x_val),
        # Fitting and scoring never read the test split (evaluate predicts it from the raw table): left empty.
        x_test=model.transform(dataset.x_test[:0]),
        y_test=dataset.y_test[:0],
        columns=(),
        label_datatype="",
    )
    model.prepared = (dataset, arrays)
    return arrays


def wrap(adapter: FrameworkAdapter) -> TabularAdapter:
    """The adapter the operators use: `adapter` for arrays, with the columns' preprocessing for tables."""
    return TabularAdapter(adapter)
