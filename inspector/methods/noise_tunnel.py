"""The noise tunnel (Captum's NoiseTunnel): any input-attribution method averaged over noisy copies.

smoothgrad: mean attribution (Smilkov et al., arXiv:1706.03825); smoothgrad_sq: mean of squares;
vargrad: variance (Adebayo et al., arXiv:1810.03307). The wrapped method runs on batches of noisy
copies, each scored against its source image's seed (the top-1 class is not re-chosen per copy).
"""

from __future__ import annotations

import numpy as np

from inspector.errors import InvalidArgument
from inspector.methods.base import Explanation, Method, take_rows
from inspector.methods.gradients import finish_input
from inspector.methods.maps import positive_int, unit_float
from inspector.methods.run import Run

KINDS = ("smoothgrad", "smoothgrad_sq", "vargrad")


def _base(name: object) -> Method:
    from inspector.methods import METHODS

    cls = METHODS.get(str(name).strip().lower())
    if cls is None or not isinstance(getattr(cls, "reduce", None), str) or issubclass(cls, NoiseTunnel):
        wrappable = sorted(n for n, c in METHODS.items()
                           if isinstance(getattr(c, "reduce", None), str) and not issubclass(c, NoiseTunnel))
        raise InvalidArgument(f"the noise tunnel wraps input-attribution methods ({', '.join(wrappable)}), "
                              f"not {name!r}", field="base")
    return cls()


class NoiseTunnel(Method):
    kind = "smoothgrad"
    uses_gradients = True
    defaults = {"base": "saliency", "samples": 20, "noise": 0.15, "seed": 0, "batch_size": 16}

    def parameters(self, params: dict[str, object]) -> dict[str, object]:
        """Its own parameters plus those of the wrapped method (see its defaults)."""
        base = _base(params.get("base") or self.defaults["base"])
        known = {**self.defaults, **base.defaults}
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise InvalidArgument(f"method {self.name!r} (wrapping {base.name!r}) does not take parameter(s) "
                                  f"{', '.join(unknown)}; its parameters are: {', '.join(sorted(known))}",
                                  field=unknown[0])
        return {**self.defaults, **{k: v for k, v in params.items() if v is not None}}

    def compute(self, run: Run, layers: list[str], params: dict[str, object]) -> Explanation:
        base = _base(params["base"])
        base_params = base.parameters({k: v for k, v in params.items() if k in base.defaults})
        samples = positive_int(params, "samples")
        noise = unit_float(params, "noise", 0.0, 10.0)
        batch = positive_int(params, "batch_size")
        rng = np.random.default_rng(positive_int(params, "seed", 0))
        flat = run.x.reshape(len(run.x), -1)
        sigma = noise * (flat.max(axis=1) - flat.min(axis=1))
        rows = np.repeat(np.arange(len(run.x)), samples)
        shape = (-1,) + (1,) * (run.x.ndim - 1)
        total = np.zeros(run.x.shape, np.float64)
        squares = np.zeros(run.x.shape, np.float64) if self.kind != "smoothgrad" else None
        for i0 in range(0, len(rows), batch):
            run.access.check_cancelled()
            r = rows[i0:i0 + batch]
            eps = rng.standard_normal((len(r), *run.x.shape[1:])).astype(np.float32)
            noisy = run.x[r] + eps * sigma[r].reshape(shape).astype(np.float32)
            if np.issubdtype(run.x.dtype, np.floating):  # integer inputs: the runtime rounds and clips
                noisy = noisy.astype(run.x.dtype)
            copy = Run(run.access, noisy, run.target, run.tensor, run.layout,
                       {run.tensor: take_rows(run.outputs[run.tensor], r, run.batch_axis)}, run.seed_rows(r),
                       run.score[r], score_after=False, batch_axis=run.batch_axis)
            a = np.asarray(base.compute(copy, layers, dict(base_params)).attribution, np.float64)
            for row in np.unique(r):
                pick = a[r == row]
                total[row] += pick.sum(axis=0)
                if squares is not None:
                    squares[row] += (pick * pick).sum(axis=0)
        mean = total / samples
        if self.kind == "smoothgrad":
            out = mean
        elif self.kind == "smoothgrad_sq":
            out = squares / samples
        else:
            out = np.maximum(squares / samples - mean * mean, 0.0)
        return finish_input(run, self.name, out.astype(np.float32), base.reduce, params)


class SmoothGrad(NoiseTunnel):
    name = kind = "smoothgrad"
    doc = ("Mean attribution of a method (base, default saliency) over noisy copies, noise std = noise * "
           "(max - min) of each image (Smilkov et al., arXiv:1706.03825).")


class SmoothGradSquared(NoiseTunnel):
    name = kind = "smoothgrad_sq"
    doc = "Mean squared attribution of a method (base) over noisy copies (Captum's NoiseTunnel smoothgrad_sq)."


class VarGrad(NoiseTunnel):
    name = kind = "vargrad"
    doc = "Variance of a method's attribution (base) over noisy copies (Adebayo et al., arXiv:1810.03307)."
