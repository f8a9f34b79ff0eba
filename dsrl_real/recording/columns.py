"""Per-step rows as Arrow columns, streamed to disk one record batch per step.

`flatten_step(**columns)` names the columns: `observation={...}` becomes `observation.state`
(proprio) and `observation.<key>` (camera images are not columns: they go to the videos),
`proprio` is `observation.state`, `reward` is LeRobot's `next.reward`, and a dict value becomes one
column per key (`progress={"robometer": 0.4}` -> `progress.robometer`). Arrays are stored flat as
lists of their own dtype (float32 stays float32, so values read back bit-exactly) with their shape
in the field metadata; None (or leaving a column out) is null on that row.

`StepStream` appends rows to Arrow IPC stream files: a SIGKILL leaves every completed batch
readable, and `read_stream_dir` reads up to the last one. A row that brings a new column (or a
type a column did not have) starts a new segment with the widened schema.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from .layout import RecordingError

SHAPE = b"shape"


def flatten_step(columns: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in columns.items():
        if value is None:
            continue  # absent: the column stays null on this row (and does not exist until some row has it)
        if name == "observation":
            if not isinstance(value, dict):
                raise RecordingError("add_step(observation=...) takes the observation dict, e.g. the env's obs.")
            for key, v in value.items():
                if key.endswith("_image"):
                    continue  # frames go to the camera videos through add_frames
                flat["observation.state" if key == "proprio" else f"observation.{key}"] = v
        elif name == "proprio":
            flat["observation.state"] = value
        elif name == "reward":
            flat["next.reward"] = value
        elif isinstance(value, dict):
            for key, v in _flatten_dict(value, name).items():
                flat[key] = v
        else:
            flat[name] = value
    return flat


def _flatten_dict(value: dict, prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, v in value.items():
        name = f"{prefix}.{key}"
        out.update(_flatten_dict(v, name) if isinstance(v, dict) else {name: v})
    return out


def arrow_cell(name: str, value: Any) -> tuple[pa.Field, pa.Array]:
    """One value as a length-1 Arrow array and its field (with the array shape as metadata)."""
    if value is None:
        return pa.field(name, pa.null()), pa.nulls(1)
    if hasattr(value, "name") and hasattr(value, "value") and not isinstance(value, (np.generic, np.ndarray)):
        value = value.name  # enums such as a human key event
    if isinstance(value, str):
        return pa.field(name, pa.string()), pa.array([value], pa.string())
    if isinstance(value, (bool, np.bool_)):
        return pa.field(name, pa.bool_()), pa.array([bool(value)], pa.bool_())
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return pa.field(name, pa.int64()), pa.array([int(value)], pa.int64())
    if isinstance(value, float):
        return pa.field(name, pa.float64()), pa.array([value], pa.float64())
    array = np.asarray(value)
    if array.dtype == object or array.dtype.kind in "USV":
        raise RecordingError(f"Column '{name}' holds {type(value).__name__}; record numbers, arrays, strings or None.")
    if array.ndim == 0:
        kind = pa.from_numpy_dtype(array.dtype)
        return pa.field(name, kind), pa.array(array.reshape(1), kind)
    if array.dtype == np.uint8 and array.ndim == 3:
        raise RecordingError(f"Column '{name}' looks like a camera image; pass frames to add_frames instead.")
    flat = np.ascontiguousarray(array).reshape(-1)
    values = pa.array(flat, pa.from_numpy_dtype(flat.dtype))
    cell = pa.ListArray.from_arrays(pa.array([0, len(flat)], pa.int32()), values)
    return pa.field(name, cell.type, metadata={SHAPE: json.dumps(list(array.shape)).encode()}), cell


def merge_fields(old: pa.Field | None, new: pa.Field) -> pa.Field:
    """The wider of two fields of one column: null gives way to any type, ints to floats."""
    if old is None:
        return new
    if old.type == new.type or pa.types.is_null(new.type):
        return old if old.metadata or not new.metadata else old.with_metadata(new.metadata)
    if pa.types.is_null(old.type):
        return new if new.metadata or not old.metadata else new.with_metadata(old.metadata)
    try:
        unified = pa.unify_schemas([pa.schema([old]), pa.schema([new])], promote_options="permissive").field(0)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as err:
        raise RecordingError(f"Column '{old.name}' changed type from {old.type} to {new.type}; keep one type per column.") from err
    return unified.with_metadata(old.metadata or new.metadata)


def merge_schemas(schemas: list[pa.Schema]) -> pa.Schema:
    fields: dict[str, pa.Field] = {}
    for schema in schemas:
        for f in schema:
            fields[f.name] = merge_fields(fields.get(f.name), f)
    return pa.schema(list(fields.values()))


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` with every column of `schema` (missing ones null), cast to the schema's types."""
    columns = []
    for f in schema:
        if f.name in table.column_names:
            column = table.column(f.name)
            columns.append(column if column.type == f.type else column.cast(f.type))
        else:
            columns.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(columns, schema=schema)


class StepStream:
    """Appends one row per call to `<directory>/steps-NNNN.arrows`; each row is flushed to the OS."""

    def __init__(self, directory: Path, declared: dict[str, dict] | None = None):
        self.directory = directory
        self.declared = declared or {}  # the features of earlier episodes: a row must fit them
        self.schema: pa.Schema | None = None
        self.rows = 0
        self._segment = -1
        self._sink = None
        self._writer = None

    def write(self, row: dict[str, Any]) -> None:
        cells: dict[str, pa.Array] = {}
        fields: dict[str, pa.Field] = {}
        for name, value in row.items():
            f, cell = arrow_cell(name, value)
            self._check(f)
            fields[name], cells[name] = f, cell
        if self.schema is None or any(self._widens(f) for f in fields.values()):
            base = list(self.schema) if self.schema is not None else []
            merged = {f.name: f for f in base}
            for f in fields.values():
                merged[f.name] = merge_fields(merged.get(f.name), f)
            self._open_segment(pa.schema(list(merged.values())))
        arrays = []
        for f in self.schema:
            cell = cells.get(f.name)
            if cell is None:
                arrays.append(pa.nulls(1, f.type))
            else:
                arrays.append(cell if cell.type == f.type else cell.cast(f.type))
        self._writer.write_batch(pa.record_batch(arrays, schema=self.schema))
        self.rows += 1

    def _check(self, f: pa.Field) -> None:
        """A column keeps one shape and one kind of value (text, flag or number) for the whole run."""
        before = self.schema.field(f.name) if self.schema is not None and f.name in self.schema.names else None
        earlier = [(column_shape(before), kind_of(feature_dtype(before)), "earlier rows")] if before is not None else []
        if f.name in self.declared:
            ft = self.declared[f.name]
            earlier.append((list(ft["shape"]), kind_of(ft["dtype"]), "earlier episodes"))
        shape, kind = column_shape(f), kind_of(feature_dtype(f))
        for old_shape, old_kind, where in earlier:
            if old_shape != shape:
                raise RecordingError(f"Column '{f.name}' has shape {shape}, {where} {old_shape}; keep one shape per column.")
            if old_kind != kind and "null" not in (old_kind, kind):
                raise RecordingError(f"Column '{f.name}' holds a {kind}, {where} a {old_kind}; keep one kind of value per column.")

    def _widens(self, f: pa.Field) -> bool:
        index = self.schema.get_field_index(f.name)
        if index < 0:
            return True
        old = self.schema.field(index)
        return old.type != f.type and not pa.types.is_null(f.type)

    def _open_segment(self, schema: pa.Schema) -> None:
        self.close()
        self._segment += 1
        self.directory.mkdir(parents=True, exist_ok=True)
        self._sink = pa.OSFile(str(self.directory / f"steps-{self._segment:04d}.arrows"), "wb")
        self._writer = pa.ipc.new_stream(self._sink, schema)
        self.schema = schema

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._sink.close()
            self._writer = self._sink = None


def _read_segment(path: Path) -> pa.Table | None:
    """Every complete record batch of one stream file; a cut-off tail (a crash mid-write) is dropped."""
    try:
        with pa.OSFile(str(path)) as source:
            reader = pa.ipc.open_stream(source)
            batches = []
            while True:
                try:
                    batches.append(reader.read_next_batch())
                except StopIteration:
                    break
                except (pa.ArrowInvalid, OSError):
                    break
            return pa.Table.from_batches(batches, schema=reader.schema)
    except (pa.ArrowInvalid, OSError):
        return None  # not even the schema made it to disk


def read_stream_dir(directory: Path) -> pa.Table:
    tables = [t for t in (_read_segment(p) for p in sorted(directory.glob("steps-*.arrows"))) if t is not None]
    if not tables:
        return pa.table({})
    schema = merge_schemas([t.schema for t in tables])
    return pa.concat_tables([conform(t, schema) for t in tables])


def column_shape(f: pa.Field) -> list[int]:
    if f.metadata and SHAPE in f.metadata:
        return json.loads(f.metadata[SHAPE])
    return [1]


def kind_of(dtype: str) -> str:
    return dtype if dtype in ("string", "bool", "null") else "number"


def feature_dtype(f: pa.Field) -> str:
    kind = f.type.value_type if pa.types.is_list(f.type) else f.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "string"
    if pa.types.is_null(kind):
        return "null"
    return np.dtype(kind.to_pandas_dtype()).name
