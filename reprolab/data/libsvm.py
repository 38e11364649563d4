"""Read LIBSVM / svmlight text files (``label idx:val idx:val ...``, 1-based indices) into dense arrays.

The classification sets in ../shared/data/libsvm (a9a, w8a; see its SOURCES.md) are small enough
to hold densely (w8a: 49,749 x 300 float64 = 119 MB). Errors name the file, the line and the fix.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from reprolab.checks import DataFileNotFoundError, UserError


class LibsvmFormatError(UserError, ValueError):
    """The file is not in LIBSVM format."""


def read_libsvm(path: str | Path, n_features: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, n_features) float64, labels (N,) float64) from a LIBSVM file.

    ``n_features``: number of columns (a9a: 123, w8a: 300); None takes the largest index seen.
    Lines that are blank are skipped; a line with only a label is a row of zeros (w8a has some).
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileNotFoundError(
            f"LIBSVM file {path} does not exist. The a9a / w8a files live in shared/data/libsvm (see its "
            "SOURCES.md): set paths.data_dir=/path/to/shared/data or REPROLAB_DATA_DIR, or point problem.path "
            "at the file.")
    labels, rows, cols, vals = [], [], [], []
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("ascii").split("#", 1)[0].split()
            except UnicodeDecodeError:
                raise LibsvmFormatError(f"{path}:{lineno}: not ASCII text; is this a LIBSVM file "
                                        "(`label idx:val idx:val ...`)?") from None
            if not line:
                continue
            row, first = len(labels), len(cols)
            try:
                labels.append(float(line[0]))
                for item in line[1:]:
                    idx, val = item.split(":")
                    cols.append(int(idx) - 1)
                    vals.append(float(val))
                    rows.append(row)
            except ValueError:
                raise LibsvmFormatError(f"{path}:{lineno}: {raw[:60]!r} is not `label idx:val idx:val ...` "
                                        "(LIBSVM format, 1-based integer indices)") from None
            low = min(cols[first:], default=0)  # every index of the line, not only its last
            if low < 0:
                raise LibsvmFormatError(f"{path}:{lineno}: feature index {low + 1} < 1; LIBSVM indices start at 1")
    if not labels:
        raise LibsvmFormatError(f"{path} holds no examples (empty file?); expected `label idx:val ...` lines")
    width = (max(cols) + 1 if cols else 0) if n_features is None else n_features
    if cols and max(cols) >= width:
        raise LibsvmFormatError(f"{path}: feature index {max(cols) + 1} exceeds n_features={width}; "
                                f"set n_features >= {max(cols) + 1}")
    X = np.zeros((len(labels), width))
    X[np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)] = vals
    return X, np.asarray(labels)
