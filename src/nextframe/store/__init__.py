"""The project's parquet tables: schemas, atomic writes, and reads straight into tensors.

Rooms, one job each (code outside the package imports from here; the rooms import each
other directly):

- ``schemas``: the tables' schemas, ``EmbeddingInfo`` (what a table's vectors mean),
  ``caption_id`` and ``text_rows`` (rows of texts.parquet)
- ``arrays``: vector columns (fixed-size lists) to and from dense arrays
- ``atomic``: files and folders that appear only once complete; ``write_json``
- ``writer``: the one parquet writer, laying vector columns out to be read in place
- ``merge``: tables in key order: streamed reads, sorted writing, merging shards
- ``parquet_meta``: the Thrift compact reader for data page headers
- ``vectors``: ``VectorColumn``, the rows of a vector column read in place
- ``frames``: the manifest, frames and truth tables as data frames
- ``images``: images.parquet read whole (``ImageEmbeddings``) or in place (``FrameIndex``)
- ``texts``: texts.parquet, caption encodings read per row (``TextEmbeddings``)
- ``rollouts``: rollouts to and from predictions/decoded tables
- ``selection``: the clips of a split that every table has
"""

from nextframe.store.arrays import arrow_to_vectors, vectors_to_arrow
from nextframe.store.atomic import atomic_path, replaced_dir, write_json
from nextframe.store.frames import read_frames, read_manifest, read_truth, write_dataframe
from nextframe.store.images import (
    FrameIndex,
    ImageEmbeddings,
    read_frame_index,
    read_image_embeddings,
)
from nextframe.store.merge import SortedTableWriter, merge_sorted_tables, stream_rows
from nextframe.store.rollouts import read_rollouts, rollouts_to_table
from nextframe.store.schemas import (
    FLOAT32,
    FRAMES_SCHEMA,
    MANIFEST_SCHEMA,
    TRUTH_SCHEMA,
    EmbeddingInfo,
    caption_id,
    decoded_schema,
    image_embeddings_schema,
    predictions_schema,
    text_embeddings_schema,
    text_rows,
)
from nextframe.store.selection import select_clips
from nextframe.store.texts import TextEmbeddings, TextTable, clip_captions, read_text_embeddings
from nextframe.store.vectors import VectorColumn
from nextframe.store.writer import group_rows, table_writer, write_table

__all__ = [
    "FLOAT32",
    "FRAMES_SCHEMA",
    "MANIFEST_SCHEMA",
    "TRUTH_SCHEMA",
    "EmbeddingInfo",
    "FrameIndex",
    "ImageEmbeddings",
    "SortedTableWriter",
    "TextEmbeddings",
    "TextTable",
    "VectorColumn",
    "arrow_to_vectors",
    "atomic_path",
    "caption_id",
    "clip_captions",
    "decoded_schema",
    "group_rows",
    "image_embeddings_schema",
    "merge_sorted_tables",
    "predictions_schema",
    "read_frame_index",
    "read_frames",
    "read_image_embeddings",
    "read_manifest",
    "read_rollouts",
    "read_text_embeddings",
    "read_truth",
    "replaced_dir",
    "rollouts_to_table",
    "select_clips",
    "stream_rows",
    "table_writer",
    "text_embeddings_schema",
    "text_rows",
    "vectors_to_arrow",
    "write_dataframe",
    "write_json",
    "write_table",
]
