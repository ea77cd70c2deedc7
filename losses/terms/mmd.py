"""`mmd`: multi-kernel RBF Maximum Mean Discrepancy between the batch's student and teacher
features (Gretton et al., JMLR 2012; the multi-kernel form of Long et al., ICML 2015, DAN)::

    mmd = MMD^2(P s, t) = mean k(Ps, Ps') + mean k(t, t') - 2 mean k(Ps, t)
    k(x, y) = sum_{q < kernel_num} exp(-||x - y||^2 / (h * kernel_mul^q)),
    h = mean pairwise squared distance / kernel_mul^(kernel_num // 2)   (detached)

(the biased estimator), on one feature (default fused). The student is projected into the
teacher's width by the loss's map P (trained unless `trained: false`); both sides are
L2-normalised; the teacher is detached. fp32. YAML::

    - {term: mmd, weight: 5.0, params: {feature: fused, kernel_num: 5, kernel_mul: 2.0}}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from core.schema import positive
from losses.terms.base import SIDES, TERMS, FeatureTerm, TermContext

_EPS = 1e-12


def mmd_rbf(s: Tensor, t: Tensor, kernel_num: int = 5, kernel_mul: float = 2.0) -> Tensor:
    """Biased multi-kernel RBF MMD^2 between the rows of s [n, D] and t [m, D]. The bandwidth
    is detached; the kernel values carry gradient."""
    z = torch.cat([s, t], dim=0)
    sq = z.pow(2).sum(dim=1)
    d2 = (sq[:, None] + sq[None, :] - 2.0 * z @ z.t()).clamp_min(0.0)
    n = len(z)
    bandwidth = d2.detach().sum() / max(n * n - n, 1)
    bandwidth = (bandwidth / kernel_mul ** (kernel_num // 2)).clamp_min(_EPS)
    k = sum(torch.exp(-d2 / (bandwidth * kernel_mul**q)) for q in range(kernel_num))
    ns = len(s)
    return k[:ns, :ns].mean() + k[ns:, ns:].mean() - 2.0 * k[:ns, ns:].mean()


@dataclass(frozen=True)
class MMDParams:
    feature: Literal["image", "text", "fused"] = "fused"
    kernel_num: int = positive(default=5)
    kernel_mul: float = positive(default=2.0)
    trained: bool = True


@TERMS.register("mmd")
class MMD(FeatureTerm):
    Params = MMDParams

    def __init__(self, params: MMDParams, ctx: TermContext) -> None:
        super().__init__(params, ctx)
        self.map = ctx.maps.get("student", params.feature, params.trained)

    def compare(self, s: Tensor, t: Tensor) -> Tensor:
        s, t = F.normalize(self.map(s), dim=-1), F.normalize(t, dim=-1)
        return mmd_rbf(s, t, self.p.kernel_num, self.p.kernel_mul)

    def text(self) -> str:
        f = SIDES[self.p.feature]
        return f"MMD^2(P_{f} s_{f}, t_{f})(kernels={self.p.kernel_num}, mul={self.p.kernel_mul:g})"
