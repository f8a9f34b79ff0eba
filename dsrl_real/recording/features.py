"""An episode's rows as LeRobot features: declared once in meta/info.json, stored with their
declared shape, never null.

While an episode runs its rows are free-form (columns.py: a column appears with its first value,
None is null, arrays are flat with their shape in the field metadata). Sealing turns them into the
table LeRobot casts with the features of info.json (lerobot/datasets/feature_utils.py,
`get_hf_features_from_features`): every declared column on every row; a shape-(1,) feature a plain
scalar, an (n,) feature a fixed-size list, an (a, b) feature nested lists; float64 stored as
float32 (what LeRobot returns anyway). A value a row does not have (the final observation's row has
no action; only a chunk's first row has noise) is filled with zeros ("" for text) and its
`valid.<name>` column, a declared bool feature, says so (a prefix, not a suffix: lerobot-doctor
takes every column starting with `action` for an action). `unmask` turns such a table back into the
free-form rows.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import RecordingError
from .columns import SHAPE, column_shape, feature_dtype

# lerobot/utils/constants.py: DEFAULT_FEATURES, every LeRobot dataset's own columns.
DEFAULTS: dict[str, dict] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
MASK = "valid."
STORED = {"float64": "float32", "float16": "float32", "int32": "int64", "int16": "int64", "int8": "int64", "uint8": "int64"}


def mask_name(name: str) -> str:
    return MASK + name


def masked(name: str) -> str:
    """The column a mask column is the mask of."""
    return name[len(MASK):]


def is_mask(name: str, features: dict) -> bool:
    return name.startswith(MASK) and masked(name) in features


def field_feature(f: pa.Field) -> dict:
    """The feature of one free-form column: dtype as stored, shape from the field metadata."""
    dtype = feature_dtype(f)
    return {"dtype": STORED.get(dtype, dtype), "shape": column_shape(f), "names": None}


def merge_feature(name: str, old: dict, new: dict) -> dict:
    """The declared feature after an episode brings `new` for it: ints widen to floats; a
    different shape or kind is a mistake the recorder stops at add_step (columns.py)."""
    if old["shape"] != new["shape"]:
        raise RecordingError(f"Column '{name}' has shape {new['shape']}, earlier episodes {old['shape']}; keep one shape per column.")
    if old["dtype"] == new["dtype"] or (old["dtype"] == "float32" and new["dtype"] == "int64"):
        return old
    if old["dtype"] == "int64" and new["dtype"] == "float32":
        return {**old, "dtype": "float32"}
    raise RecordingError(f"Column '{name}' holds {new['dtype']}, earlier episodes {old['dtype']}; keep one type per column.")


def always_present(name: str) -> bool:
    """Columns every row has: LeRobot's own, the recorder's clock and the observation."""
    return name in DEFAULTS or name == "wall_time_ns" or name.startswith("observation.")


def episode_features(table: pa.Table, declared: dict) -> dict:
    """The features after sealing `table`: the declared ones and every new column, each with its
    mask but the ones every row has (so an episode lacking a column changes no earlier episode's
    table). Never fewer than `declared` (earlier episodes keep theirs)."""
    features = {**DEFAULTS, **declared}
    for f in table.schema:
        if f.name in DEFAULTS or pa.types.is_null(f.type):
            continue
        new = field_feature(f)
        features[f.name] = merge_feature(f.name, features[f.name], new) if f.name in features else new
    for name in list(features):
        if features[name]["dtype"] == "video" or is_mask(name, features) or mask_name(name) in features:
            continue
        lacking = name not in table.column_names or table.column(name).null_count > 0
        if lacking or not always_present(name):
            features[mask_name(name)] = {"dtype": "bool", "shape": [1], "names": None}
    return features


def arrow_type(feature: dict) -> pa.DataType:
    """The Arrow type `datasets` writes for a feature (Value, List(length), Array2D..5D storage)."""
    kind = pa.string() if feature["dtype"] == "string" else pa.from_numpy_dtype(np.dtype(feature["dtype"]))
    shape = list(feature["shape"])
    if shape == [1]:
        return kind
    for size in reversed(shape):
        kind = pa.list_(kind, size)
    return kind


def hf_metadata(features: dict) -> bytes:
    """The `huggingface` schema metadata `datasets` writes, so plain `datasets` readers and the
    Hub's viewer rebuild the nested columns (LeRobot itself casts with info.json)."""
    out = {}
    for name, ft in features.items():
        if ft["dtype"] == "video":
            continue
        shape = list(ft["shape"])
        if shape == [1]:
            out[name] = {"dtype": ft["dtype"], "_type": "Value"}
        elif len(shape) == 1:
            out[name] = {"feature": {"dtype": ft["dtype"], "_type": "Value"}, "length": shape[0], "_type": "List"}
        else:
            out[name] = {"shape": shape, "dtype": ft["dtype"], "_type": f"Array{len(shape)}D"}
    return json.dumps({"info": {"features": out}}).encode()


def leaves(array: pa.Array) -> pa.Array:
    """The values of a (nested) list column, every level flattened; a scalar column as it is."""
    while pa.types.is_list(array.type) or pa.types.is_fixed_size_list(array.type):
        array = array.flatten()
    return array


def dense(column: pa.ChunkedArray | None, feature: dict, rows: int) -> tuple[np.ndarray | list, np.ndarray]:
    """A free-form column as (rows, *shape) values with nulls filled, and where it had values."""
    shape = [] if feature["shape"] == [1] else list(feature["shape"])
    if column is None:
        valid = np.zeros(rows, bool)
    else:
        column = column.combine_chunks()
        valid = column.is_valid().to_numpy(zero_copy_only=False)
    if feature["dtype"] == "string":
        values = [""] * rows if column is None else ["" if v is None else str(v) for v in column.to_pylist()]
        return values, valid
    out = np.zeros((rows, *shape), np.dtype(feature["dtype"]))
    if column is not None and valid.any():
        out[valid] = leaves(column.filter(pa.array(valid))).to_numpy(zero_copy_only=False).reshape(-1, *shape)
    return out, valid


def stored_array(values: np.ndarray | list, feature: dict) -> pa.Array:
    kind = arrow_type(feature)
    if feature["dtype"] == "string" or feature["shape"] == [1]:
        return pa.array(values, kind)
    array = pa.array(np.ascontiguousarray(values).reshape(-1))
    for size in reversed(feature["shape"]):
        array = pa.FixedSizeListArray.from_arrays(array, size)
    return array.cast(kind)


def conform(table: pa.Table, features: dict, *, episode_index: int, first_index: int, task_index: int, fps: float) -> pa.Table:
    """`table` (free-form rows, or an earlier conformed table) as the LeRobot table of `features`:
    LeRobot's own columns rewritten from the episode's place in the dataset, timestamps on the
    video's frame times."""
    rows = table.num_rows
    frame = np.arange(rows, dtype=np.int64)
    own = {"timestamp": (frame / fps).astype(np.float32), "frame_index": frame, "episode_index": np.full(rows, episode_index),
           "index": first_index + frame, "task_index": np.full(rows, task_index)}
    free = unmask(table, features) if any(is_mask(n, features) for n in table.column_names) else table
    arrays, fields = [], []
    for name, ft in features.items():
        if ft["dtype"] == "video":
            continue
        if name in own:
            values = own[name]
        elif is_mask(name, features):
            base = masked(name)
            values = dense(free.column(base) if base in free.column_names else None, features[base], rows)[1]
        else:
            values = dense(free.column(name) if name in free.column_names else None, ft, rows)[0]
        arrays.append(stored_array(values, ft))
        fields.append(pa.field(name, arrays[-1].type, nullable=False))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata={b"huggingface": hf_metadata(features)}))


def unmask(table: pa.Table, features: dict) -> pa.Table:
    """A conformed table back as free-form rows: null where a mask says a row had no value, arrays
    flat with their shape in the field metadata; mask columns dropped."""
    arrays, fields = [], []
    for name in table.column_names:
        if is_mask(name, features):
            continue
        column = table.column(name).combine_chunks()
        ft = features.get(name)
        if ft is not None and ft["shape"] != [1]:
            flat = leaves(column)
            size = int(np.prod(ft["shape"]))
            column = pa.ListArray.from_arrays(pa.array(np.arange(0, len(flat) + 1, size, dtype=np.int32)), flat)
        field = pa.field(name, column.type, metadata={SHAPE: json.dumps(ft["shape"]).encode()} if ft and ft["shape"] != [1] else None)
        if mask_name(name) in table.column_names and ft is not None:
            valid = table.column(mask_name(name)).combine_chunks()
            column = pc.if_else(valid, column, pa.scalar(None, column.type))  # null where the row had no value
        arrays.append(column)
        fields.append(field)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))

