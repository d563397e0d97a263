"""Request logs: what the model server was asked and answered, kept in the store as Parquet (issue 16 §2).

The one definition of the layout, shared by the server's writer (mlspec.server.request_log) and the readers
(`mlspec drift`, mlspec.drift_report). Below the store's root (the spec's `storage.uri`):

    <model>/requests/v<version>/<YYYY-MM-DD>/<HH>/part-<unix ms>-<8 hex>.parquet

in the UTC hour the requests arrived. One row per input row (a batch of 8 is 8 rows), with the columns
- `ts` (timestamp, ms, UTC: when the request arrived), `request_id` (string), `version` (string), `row`
  (int32: the row's place in its request);
- one column per input feature, named as the version's profile.json names it, so drift compares like with
  like: a table model's columns by name; an array model's flat features by the names its input_schema.json
  publishes, f0, f1, ... where the data had none (what validate_data profiled,
  mlspec.operators.validate.training_table).
  An array of more than MAX_CHECKED_FEATURES values per sample (an image) logs no feature column, as
  validate_data profiles none. A feature named like a column above is stored as "input:<name>";
- the outputs `label` and/or `prediction`, one value per row, as the model answered them.

Settings (`serving.log_requests: {sample, max_mb_per_hour}`): `sample` is the share of requests logged, picked
by a stable hash of the request id (a retried request is logged or not, like the first try); `max_mb_per_hour`
caps the Parquet bytes one server writes per model and hour: rows over it are dropped and counted
(mlspec_request_log_dropped_total{reason="cap"}).
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mlspec.deadlines import parse_duration
from mlspec.errors import StoreError
from mlspec.vocabulary import MAX_CHECKED_FEATURES, OUTPUTS

REQUESTS_FOLDER = "requests"
LOG_COLUMNS = ("ts", "request_id", "version", "row")
LOGGED_OUTPUTS = tuple(
    dict.fromkeys(name for names in OUTPUTS.values() for name in names if name != "probabilities")
)
RESERVED_COLUMNS = frozenset(LOG_COLUMNS + LOGGED_OUTPUTS)
FEATURE_PREFIX = "input:"
PART_SUFFIX = ".parquet"
# Why a row was not logged (mlspec_request_log_dropped_total's `reason`): over max_mb_per_hour, the writer's
# queue full (the store slower than the requests), the store refused the part.
DROP_REASONS = ("cap", "queue_full", "write_error")
DEFAULT_MAX_ROWS = 1_000_000  # the newest rows a reader takes at most
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_HOUR = re.compile(r"^\d{2}$")


def log_folder_uri(store_uri: str, model: str) -> str:
    """The request log folder of `model` in the store at `store_uri` (what the server's /logging takes)."""
    return f"{store_uri.rstrip('/')}/{model}/{REQUESTS_FOLDER}"


def hour_folder(version: str, at: datetime) -> str:
    """The folder of `version`'s rows that arrived in `at`'s UTC hour, relative to the log folder."""
    at = at.astimezone(UTC)
    return f"v{version}/{at:%Y-%m-%d}/{at:%H}"


def part_name(at: datetime, suffix: str) -> str:
    return f"part-{int(at.timestamp() * 1000)}-{suffix}{PART_SUFFIX}"


def feature_column(name: str) -> str:
    """The log column of input feature `name`."""
    return FEATURE_PREFIX + name if name in RESERVED_COLUMNS or name.startswith(FEATURE_PREFIX) else name


def feature_name(column: str) -> str:
    """The input feature a log column holds (feature_column's inverse)."""
    return column[len(FEATURE_PREFIX) :] if column.startswith(FEATURE_PREFIX) else column


def array_feature_names(
    input_schema: Mapping[str, Any] | None, input_name: str, width: int, inputs: int
) -> list[str]:
    """The names of an array input's `width` flat features as profile.json names them; [] when there are more
    than MAX_CHECKED_FEATURES (validate_data profiles none of them). A model's only input takes its
    input_schema.json feature names; where the data had none, input_schema says x[0], x[1], ...
    (mlspec.ml.io_schema.feature_names) and the profile f0, f1, ... (validate.training_table): the profile's
    are taken. Another input of a model of several is named <input>[i]."""
    if width > MAX_CHECKED_FEATURES:
        return []
    if inputs > 1:
        return [f"{input_name}[{i}]" for i in range(width)]
    features = (input_schema or {}).get("features") or []
    names = [str(feature.get("name")) for feature in features if isinstance(feature, Mapping)]
    if len(names) == width and names != [f"x[{i}]" for i in range(width)]:
        return names
    return [f"f{i}" for i in range(width)]


# ---------------------------------------------------------------------------------------- the deploy side


def request_log_settings(spec: Any, store_uri: str) -> dict[str, Any] | None:
    """The parameters of the model server's `POST /v2/repository/models/{m}/logging` for the spec's
    `serving.log_requests` (None: the spec logs nothing, so logging is to be stopped). `store_uri` is the root
    of the spec's store as the server reads it."""
    settings = spec.serving.log_requests
    if settings is None:
        return None
    return {
        "uri": log_folder_uri(store_uri, spec.name),
        "sample": float(settings.sample),
        "max_mb_per_hour": float(settings.max_mb_per_hour),
    }


# ---------------------------------------------------------------------------------------- the readers


@dataclass(frozen=True)
class LoggedRows:
    """What a reader found: the rows (a pandas DataFrame with the layout's columns), the parts read, and how
    many older parts since the time asked for were left unread (over `max_rows`)."""

    frame: Any
    parts: tuple[str, ...]
    parts_left_out: int = 0


def parts_since(store: Any, model: str, version: int | str, since: datetime) -> list[str]:
    """The store keys of `version`'s parts in the hours from `since`'s to now, oldest first."""
    base = f"{model}/{REQUESTS_FOLDER}/v{version}"
    first = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    keys = []
    for day in store.list_children(base):
        if not _DAY.match(day) or day < f"{first:%Y-%m-%d}":
            continue
        for hour in store.list_children(f"{base}/{day}"):
            if not _HOUR.match(hour) or f"{day}/{hour}" < f"{first:%Y-%m-%d/%H}":
                continue
            keys += [
                f"{base}/{day}/{hour}/{name}"
                for name in store.list_children(f"{base}/{day}/{hour}")
                if name.startswith("part-") and name.endswith(PART_SUFFIX)
            ]
    return sorted(keys, key=_part_order)


def read_since(
    store: Any, model: str, version: int | str, since: datetime, *, max_rows: int = DEFAULT_MAX_ROWS
) -> LoggedRows:
    """`version`'s logged rows that arrived at or after `since`, from the newest parts back to at least
    `max_rows` rows (older parts are left unread and counted). A part the store cannot give back or that is no
    Parquet is a StoreError naming it."""
    import pandas as pd
    import pyarrow.parquet as pq

    since = since.astimezone(UTC)
    keys = parts_since(store, model, version, since)
    frames, rows = [], 0
    while keys and rows < max_rows:  # newest first
        key = keys.pop()
        data = store.read_bytes(key)
        try:
            frame = pq.read_table(io.BytesIO(data)).to_pandas()
        except Exception as exc:  # pyarrow's own errors: a damaged or foreign file
            raise StoreError(f"{store.uri_for(key)} is not a readable Parquet part: {exc}") from None
        frames.append((store.uri_for(key), frame[frame["ts"] >= pd.Timestamp(since)]))
        rows += len(frames[-1][1])
    if not frames:
        return LoggedRows(pd.DataFrame(columns=list(LOG_COLUMNS)), (), len(keys))
    frame = pd.concat([f for _, f in reversed(frames)], ignore_index=True)
    return LoggedRows(
        frame.sort_values("ts", kind="stable", ignore_index=True),
        tuple(u for u, _ in reversed(frames)),
        len(keys),
    )


def feature_columns(frame: Any) -> dict[str, str]:
    """{feature name: its log column} of a frame read from the log."""
    return {feature_name(column): column for column in frame.columns if column not in RESERVED_COLUMNS}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """`--since`: a duration back from now (`30m`, `24h`, `7d`) or an ISO time (`2026-12-07T14:00:00Z`)."""
    now = now or datetime.now(UTC)
    text = text.strip()
    try:
        return now - timedelta(seconds=parse_duration(text, where="--since"))
    except ValueError:
        pass
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"--since {text[:40]!r} is neither a duration (30m, 24h, 7d) nor a time (2026-12-07T14:00:00Z)"
        ) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _part_order(key: str) -> tuple[str, int]:
    name = key.rsplit("/", 1)[-1]
    stamp = name.split("-")[1] if name.count("-") >= 2 else ""
    return (key.rsplit("/", 1)[0], int(stamp) if stamp.isdigit() else 0)
