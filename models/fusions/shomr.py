"""`shomr`: hard per-sample routing among three modality experts.

    experts  E_0 = M_img(v),  E_1 = M_txt(t),  E_2 = M_joint([v; t])
             (each M = Linear(in, dim)-GELU-Dropout-Linear(dim, dim))
    router   r = W_r [v; t] + b_r in R^3,   P = softmax(r)
    train    e* = argmax(r + G),  G ~ Gumbel(0, 1) iid         (Gumbel-max: a hard sample of P)
             y = softmax((r + G) / tau),  tau = 1
             fused = E_{e*} + sum_e (y_e - sg(y_e)) E_e          (straight-through Gumbel-softmax)
    eval     e* = argmax r (no sampling), fused = E_{e*}; each expert runs only on its samples
    aux      routing_balance = aux_weight * 3 * sum_e f_e * mean_b(P_{b,e})   (Switch Transformer)
             f_e = fraction of the batch routed to e (hard, no gradient); equals aux_weight
             when routing is balanced.

Choices: the straight-through term is zero in value, so the forward output is exactly the
chosen expert's output, while the router gets the Gumbel-softmax gradient dL/dy_e = <dL/dfused,
E_e>. That needs every expert's output, so training runs all experts on the whole batch (and
every parameter gets a gradient, zero for an expert no sample chose). The balance term is
returned in eval too, computed from the deterministic argmax choice, for logging (the trainer
adds aux losses only in training). `layers` and `heads` are unused.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from models.fusions.base import FUSIONS, Fusion


def _mlp(d_in: int, dim: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(dim, dim))


@FUSIONS.register("shomr")
class ShomrFusion(Fusion):
    tau = 1.0

    def __init__(
        self, dim: int, layers: int = 1, heads: int = 4, dropout: float = 0.1, aux_weight: float = 0.01
    ) -> None:
        super().__init__(dim, layers, heads, dropout, aux_weight)
        self.experts = nn.ModuleList(
            [_mlp(dim, dim, dropout), _mlp(dim, dim, dropout), _mlp(2 * dim, dim, dropout)]
        )
        self.router = nn.Linear(2 * dim, len(self.experts))

    def forward(self, v: Tensor, t: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        vt = torch.cat([v, t], dim=-1)
        inputs = (v, t, vt)
        logits = self.router(vt).float()  # [B, n_experts]
        n = logits.shape[-1]
        if self.training:
            gumbel = -torch.empty_like(logits).exponential_().log()
            noisy = logits + gumbel
            choice = noisy.argmax(dim=-1)
            y = torch.softmax(noisy / self.tau, dim=-1)
            outs = torch.stack([e(x) for e, x in zip(self.experts, inputs, strict=True)], dim=1)
            chosen = outs.gather(1, choice.view(-1, 1, 1).expand(-1, 1, outs.shape[-1])).squeeze(1)
            st = (y - y.detach()).to(outs.dtype)  # zero in value, gradient of y
            fused = chosen + (st.unsqueeze(-1) * outs).sum(dim=1)
        else:
            choice = logits.argmax(dim=-1)
            fused = None
            for e, (expert, x) in enumerate(zip(self.experts, inputs, strict=True)):
                idx = (choice == e).nonzero().squeeze(1)
                if idx.numel() == 0:
                    continue
                out = expert(x[idx])
                if fused is None:
                    fused = out.new_empty(x.shape[0], out.shape[-1])
                fused[idx] = out
            assert fused is not None  # every sample has exactly one expert
        f = torch.bincount(choice, minlength=n).to(logits.dtype) / choice.numel()
        balance = n * (f * torch.softmax(logits, dim=-1).mean(dim=0)).sum()
        return fused, {"routing_balance": self.aux_weight * balance}
