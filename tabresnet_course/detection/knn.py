"""Exact nearest neighbours on the raw features without building their one-hot rows.

The raw view of an event is its (scaled) numericals next to one integer code per categorical
field (:func:`~tabresnet_course.detection.scorers.tree_features`); its distance is the Euclidean
distance between one-hot rows (:func:`~tabresnet_course.detection.scorers.one_hot_features`).
Between two one-hot rows the squared distance is the numerical part plus 2 for every field whose
codes differ, so :class:`CodesKNNIndex` never needs the sparse one-hot matrix:

- it one-hot encodes only the categories the reference holds (a few hundred columns, not the
  thousands of the full encoding); a query category the reference lacks becomes a zero vector,
  which is at the same distance from every reference row, so it changes no ranking;
- it finds candidates block by block with dense matrix products: the numerical part in float32
  and the category matches (small integers, exact in bfloat16 inputs with float32 sums) in
  bfloat16 where the CPU multiplies it natively (:func:`~tabresnet_course.runtime.cpu_has_native_bf16`);
- it recomputes the candidates' distances exactly in float64 from the codes (numerical squares
  plus 2 per differing code) and keeps the ``k`` nearest.

The neighbours and distances are those of scikit-learn's brute-force search on the one-hot rows
except between rows whose distances differ by float32 rounding (about 1e-6 of the distance):
ties are broken by the lower reference index. ``benchmarks/bench_scoring.py`` measures it
against that search; ``tests/test_scorers.py`` checks the equality. Chapter "The OCSF pipeline".
"""

from __future__ import annotations

import numpy as np
import torch

from tabresnet_course.runtime import cpu_has_native_bf16

__all__ = ["CANDIDATE_MARGIN", "CodesKNNIndex"]

TILE_VALUES = 2**24
"""Distances per tile (64 MB of float32): a block of queries holds ``TILE_VALUES // n_ref`` rows,
so memory stays flat whatever the reference size."""

CANDIDATE_MARGIN = 8
"""Candidates kept beyond ``k`` from the float32 tile before the exact float64 re-ranking, so a
float32 rounding cannot push one of the true ``k`` nearest out."""


class CodesKNNIndex:
    """Exact kNN under the one-hot Euclidean distance of ``numerical`` ``(n, p)`` float rows and
    their category ``codes`` ``(n, F)`` (non-negative integers). See the module docstring."""

    def __init__(self, numerical: np.ndarray, codes: np.ndarray) -> None:
        self.numerical = np.ascontiguousarray(numerical, dtype=np.float64)
        self.codes = np.ascontiguousarray(codes, dtype=np.int64)
        self.categories = [np.unique(column) for column in self.codes.T]  # per field: the reference's codes
        exact_in_bf16 = self.codes.shape[1] <= 256  # match counts up to 256 are exact bfloat16 integers
        self.dtype = torch.bfloat16 if exact_in_bf16 and cpu_has_native_bf16() else torch.float32
        self.reference_numerical = torch.from_numpy(self.numerical.astype(np.float32))  # (n, p)
        self.squared_norms = (self.reference_numerical**2).sum(dim=1)  # (n,)
        self.reference_one_hot = self.one_hot(self.codes)  # (n, sum of categories)

    def __len__(self) -> int:
        return len(self.codes)

    def one_hot(self, codes: np.ndarray) -> torch.Tensor:
        """``(m, sum of categories)`` one-hot rows over the reference's categories only (a code
        the reference lacks in a field gives that field no 1)."""
        columns = [codes[:, field, None] == categories[None, :] for field, categories in enumerate(self.categories)]
        if not columns:
            return torch.zeros((len(codes), 0), dtype=self.dtype)
        return torch.from_numpy(np.hstack(columns)).to(self.dtype)

    @torch.no_grad()
    def candidates(self, numerical: np.ndarray, codes: np.ndarray, count: int) -> np.ndarray:
        """``(m, count)`` reference rows nearest to each query row by the float32 tile
        ``|r|^2 - 2 q.r - 2 matches(q, r)`` (the query's own terms rank no row)."""
        query = torch.from_numpy(np.ascontiguousarray(numerical, dtype=np.float32))  # (m, p)
        one_hot = self.one_hot(codes)  # (m, columns)
        tile = torch.addmm(self.squared_norms, query, self.reference_numerical.T, alpha=-2.0)  # (m, n)
        if one_hot.shape[1]:
            tile.sub_(torch.mm(one_hot, self.reference_one_hot.T), alpha=2.0)
        return tile.topk(count, dim=1, largest=False, sorted=False).indices.numpy()

    def exact_distances(self, numerical: np.ndarray, codes: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """``(m, c)`` one-hot Euclidean distances in float64 from query rows to reference rows
        ``indices`` ``(m, c)``: numerical squares plus 2 per differing code."""
        squares = ((numerical[:, None, :] - self.numerical[indices]) ** 2).sum(axis=2)
        return np.sqrt(squares + 2.0 * (codes[:, None, :] != self.codes[indices]).sum(axis=2))

    def kneighbors(
        self, numerical: np.ndarray, codes: np.ndarray, k: int, exclude_self: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(distances, indices)``, both ``(m, k)``, nearest first (ties: lower index first).
        ``exclude_self``: the query rows are the reference rows, in order, and each row's own
        index is left out (the leave-one-out neighbours)."""
        numerical = np.asarray(numerical, dtype=np.float64)
        codes = np.asarray(codes, dtype=np.int64)
        wanted = k + int(exclude_self)
        count = min(len(self), wanted + CANDIDATE_MARGIN)
        distances, indices = [], []
        block = max(1, TILE_VALUES // len(self))
        for start in range(0, len(numerical), block):
            rows = slice(start, start + block)
            found = self.candidates(numerical[rows], codes[rows], count)  # (b, count)
            exact = self.exact_distances(numerical[rows], codes[rows], found)  # (b, count)
            if exclude_self:
                own = np.arange(start, start + len(found))[:, None]
                exact = np.where(found == own, np.inf, exact)
            order = np.lexsort((found, exact), axis=1)[:, :k]  # by distance, then by index
            distances.append(np.take_along_axis(exact, order, axis=1))
            indices.append(np.take_along_axis(found, order, axis=1))
        return np.concatenate(distances), np.concatenate(indices)
