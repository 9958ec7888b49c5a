"""What the model predicts over the audit set: class histogram, accuracy and top confusions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import numpy as np

from inspector.errors import InvalidArgument


class PredictionTally:
    """Streaming counts of predicted classes (argmax over axis 1) and, with labels, of (true, predicted)."""

    def __init__(self) -> None:
        self.predicted: Counter[int] = Counter()
        self.pairs: Counter[tuple[int, int]] = Counter()

    def update(self, scores: np.ndarray, labels: np.ndarray | None = None) -> None:
        """scores: [N, K] (or [N, K, 1, 1]) class scores; labels: N integer classes or None."""
        s = np.asarray(scores)
        if s.ndim < 2 or s.reshape(s.shape[0], -1).shape[1] < 2:
            raise InvalidArgument(f"The model output has shape {list(s.shape)}, not [N, classes]; "
                                  "a prediction summary needs class scores.", field="labels")
        predicted = s.reshape(s.shape[0], -1).argmax(axis=1)
        self.predicted.update(int(p) for p in predicted)
        if labels is not None:
            truth = np.asarray(labels).reshape(-1)
            if truth.shape[0] != predicted.shape[0] or truth.dtype.kind not in "iu":
                raise InvalidArgument(f"Got {truth.shape[0]} labels of type {truth.dtype} for "
                                      f"{predicted.shape[0]} images; give one integer class per image.",
                                      field="labels")
            self.pairs.update(zip(truth.tolist(), predicted.tolist(), strict=True))

    def merge(self, other: PredictionTally) -> None:
        self.predicted.update(other.predicted)
        self.pairs.update(other.pairs)

    def result(self, top: int = 10) -> dict:
        """JSON-ready summary; accuracy and confusions only when labels were given."""
        out: dict = {"images": sum(self.predicted.values()),
                     "predicted_histogram": {str(k): v for k, v in sorted(self.predicted.items())}}
        labelled = sum(self.pairs.values())
        if labelled:
            correct = sum(v for (t, p), v in self.pairs.items() if t == p)
            wrong = sorted(((v, t, p) for (t, p), v in self.pairs.items() if t != p),
                           key=lambda e: (-e[0], e[1], e[2]))
            out.update(labelled=labelled, accuracy=correct / labelled,
                       top_confusions=[{"true": t, "predicted": p, "count": v} for v, t, p in wrong[:top]])
        return out

    def to_dict(self) -> dict:
        return {"predicted": [[k, v] for k, v in self.predicted.items()],
                "pairs": [[t, p, v] for (t, p), v in self.pairs.items()]}

    @classmethod
    def from_dict(cls, data: Mapping) -> PredictionTally:
        tally = cls()
        tally.predicted.update({int(k): int(v) for k, v in data["predicted"]})
        tally.pairs.update({(int(t), int(p)): int(v) for t, p, v in data["pairs"]})
        return tally
