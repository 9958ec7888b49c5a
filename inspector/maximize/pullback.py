"""The model's preprocessing seen as a per-pixel affine map, so gradients can go back through it.

`to_input` (scale, mean/std, RGB->BGR, NCHW/NHWC) is given as a black box; we measure it on
four constant images (its bias and one column per RGB channel), check on a random image that it
really is per-pixel affine, and then apply its transpose to the gradient on the model input.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from inspector import errors


class InputPullback:
    """x = to_input(rgb) = rgb @ M^T + b per pixel, in NCHW or NHWC; `__call__` is M^T.

    A mapping that rounds what it feeds (uint8/int8 or float16 inputs) carries its float32 twin
    as `to_input.linear` (maximize.request.input_mapping); M and b are measured on that twin, so
    the final rounding passes straight through, like the gradient model's straight-through Cast
    of an integer input (graph.autodiff.inputs).
    """

    def __init__(self, to_input: Callable[[np.ndarray], np.ndarray], size: tuple[int, int]) -> None:
        to_input = getattr(to_input, "linear", to_input)
        h, w = size
        base = np.asarray(to_input(np.zeros((1, h, w, 3), np.float32)))
        if base.ndim != 4 or not np.issubdtype(base.dtype, np.floating):
            raise errors.InvalidArgument(
                f"the preprocessing gives {base.dtype} {list(base.shape)}; activation "
                "maximization needs a floating-point 4-D image input", field="preprocess")
        if base.shape[2:] == (h, w):
            self.channel_axis = 1
        elif base.shape[1:3] == (h, w):
            self.channel_axis = 3
        else:
            raise errors.InvalidArgument(
                f"the preprocessing turns a {h}x{w} image into shape {list(base.shape)}; it must "
                "keep the size (no resize or crop) for activation maximization", field="input_size")
        base = np.moveaxis(base, self.channel_axis, -1)[0].astype(np.float64)  # [H, W, C]
        cols = []
        for c in range(3):
            one = np.zeros((1, h, w, 3), np.float32)
            one[..., c] = 1.0
            cols.append(np.moveaxis(np.asarray(to_input(one)), self.channel_axis, -1)[0] - base)
        self.matrix = np.stack([col[0, 0] for col in cols], axis=1)  # [C_model, 3]
        self.bias = base[0, 0]
        self._verify(to_input, size)

    def _verify(self, to_input: Callable[[np.ndarray], np.ndarray], size: tuple[int, int]) -> None:
        probe = np.random.default_rng(0).random((1, *size, 3)).astype(np.float32)
        got = np.moveaxis(np.asarray(to_input(probe), np.float64), self.channel_axis, -1)
        want = probe @ self.matrix.T + self.bias
        if not np.allclose(got, want, rtol=1e-4, atol=1e-4 * (1 + np.abs(want).max())):
            raise errors.FailedPrecondition(
                "the model's preprocessing is not a per-pixel affine map (scale, mean/std, channel "
                "order, layout), so gradients cannot be pulled back through it", field="preprocess")

    def __call__(self, grad: np.ndarray) -> np.ndarray:
        """Gradient on the model input [N, ...] -> gradient on display RGB [N, H, W, 3]."""
        g = np.moveaxis(np.asarray(grad, np.float32), self.channel_axis, -1)
        return g @ self.matrix.astype(np.float32)
