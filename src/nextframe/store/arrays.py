"""Vector columns and dense arrays: fixed-size lists of float32 (float16 for hidden
states), so that a whole column converts to one ``[N, D]`` array without a Python loop."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import torch


def vectors_to_arrow(vectors: np.ndarray | torch.Tensor, value_type: pa.DataType) -> pa.Array:
    """``[N, D]`` (or ``[N, T, D]``) array to a (nested) fixed-size list array, no Python loop."""
    if isinstance(vectors, torch.Tensor):
        vectors = vectors.detach().cpu().numpy()
    numpy_type = value_type.to_pandas_dtype()
    values = np.ascontiguousarray(vectors, dtype=numpy_type)
    array: pa.Array = pa.array(values.reshape(-1), type=value_type)
    for size in reversed(values.shape[1:]):
        array = pa.FixedSizeListArray.from_arrays(array, size)
    return array


def arrow_to_vectors(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A (nested) fixed-size list column back to a dense ``[N, ..., D]`` array."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    shape = [len(array)]
    while pa.types.is_fixed_size_list(array.type):
        shape.append(array.type.list_size)
        array = array.flatten()
    return array.to_numpy(zero_copy_only=False).reshape(shape)


def is_vector_column(data_type: pa.DataType) -> bool:
    return pa.types.is_fixed_size_list(data_type)


def row_shape(data_type: pa.DataType) -> tuple[tuple[int, ...], pa.DataType]:
    """A (nested) fixed-size list type's per-row shape and value type: ``[T, D]`` float16."""
    shape = []
    while pa.types.is_fixed_size_list(data_type):
        shape.append(data_type.list_size)
        data_type = data_type.value_type
    return tuple(shape), data_type
