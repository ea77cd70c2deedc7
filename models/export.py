"""A trained KDModel as MLflow's PyTorch flavour serves it: one float32 matrix in, probabilities out.

MLflow's PyTorch models take one tensor (a numpy array or a DataFrame through pyfunc), while a
KDModel reads a batch dict (`image` uint8, the role's `input_ids_*` / `attention_mask_*`,
`instance_mask` for bags, `volume` for 3-D models). `Packed` carries the layout: each input's
per-sample shape and dtype, in order, flattened side by side into one row per sample. Its
output is every task's class probabilities side by side (softmax for multiclass tasks, sigmoid
for multilabel ones), in `columns` order ("<task>/p/<class>"), the columns of the run's
predictions/test.csv.

Layout example (a multimodal student, 64 px grey images, 64 tokens)::

    [("image", (1, 64, 64), "uint8"), ("input_ids_student", (64,), "int64"),
     ("attention_mask_student", (64,), "int64")]   -> 4096 + 64 + 64 float32 columns

Text and bags of different lengths fit by padding (id 0, mask 0), which the masks ignore.
`Packed.batch` turns a batch dict into the matrix, padding where needed; `Packed.unpack` is
its inverse. The module holds the whole KDModel (`self.model`), so
`mlflow.pytorch.load_model(...).model(batch)` also takes kdsweep's batch dicts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

Layout = Sequence[tuple[str, tuple[int, ...], str]]


class Packed(nn.Module):
    def __init__(
        self, model: nn.Module, layout: Layout, tasks: Mapping[str, Sequence[str]], activation: str
    ) -> None:
        super().__init__()
        self.model = model
        self.layout = [(k, tuple(int(x) for x in shape), str(dtype)) for k, shape, dtype in layout]
        self.tasks = {t: list(c) for t, c in tasks.items()}
        self.activation = activation  # "softmax" (multiclass) or "sigmoid" (multilabel)

    @property
    def width(self) -> int:
        return sum(math.prod(shape) for _, shape, _ in self.layout)

    @property
    def columns(self) -> list[str]:
        return [f"{t}/p/{c}" for t, classes in self.tasks.items() for c in classes]

    def unpack(self, x: Tensor) -> dict[str, Tensor]:
        x = torch.as_tensor(x)
        out, i = {}, 0
        for key, shape, dtype in self.layout:
            n = math.prod(shape)
            part = x[:, i : i + n].reshape(-1, *shape)
            out[key] = part.round().to(getattr(torch, dtype)) if dtype != "float32" else part.float()
            i += n
        return out

    def batch(self, batch: Mapping[str, Tensor]) -> Tensor:
        """A batch dict as the matrix: each input cut or zero-padded to the layout's shape."""
        parts = []
        for key, shape, _ in self.layout:
            t = batch[key]
            full = torch.zeros((t.shape[0], *shape), dtype=torch.float32)
            region = tuple(slice(0, min(a, b)) for a, b in zip(t.shape[1:], shape, strict=True))
            full[(slice(None), *region)] = t[(slice(None), *region)].float()
            parts.append(full.reshape(t.shape[0], -1))
        return torch.cat(parts, dim=1)

    def forward(self, x: Tensor) -> Tensor:
        out = self.model(self.unpack(x))
        logits = [out.logits[t].float() for t in self.tasks]
        if self.activation == "sigmoid":
            return torch.cat([torch.sigmoid(z) for z in logits], dim=1)
        return torch.cat([torch.softmax(z, dim=1) for z in logits], dim=1)
