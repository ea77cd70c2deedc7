"""DSMIL: dual-stream multiple-instance learning (one label per bag of instances).

Li, Li & Eliceiri, CVPR 2021, "Dual-stream Multiple Instance Learning Network for Whole Slide
Image Classification with Self-supervised Contrastive Learning"; reference code
binli123/dsmil-wsi, `dsmil.py` (`IClassifier`, `BClassifier`, `MILNet`). A bag is a set of
instances (slices of a scan, tiles of a slide); only the bag has a label.

For one bag with real instances i = 1..N and classes k = 1..K::

    h_i = flatten(encoder(x_i))                        [D]   shared instance encoder
    stream 1 (max pooling of instance scores)
        c_i = W_c h_i + b_c                            [K]   instance_logits
        m_k = argmax_i c_ik                                  critical (ties: first index)
        s_max_k = c_{m_k, k} = max_i c_ik                    max_logits
    stream 2 (attention to the critical instance)
        q_i = tanh(W2 relu(W1 h_i))  if nonlinear, else W1 h_i          [Q = query_dim]
        a_ik = softmax_i( <q_i, q_{m_k}> / sqrt(Q) )                    attention (sums to 1 over i)
        v_i = relu(W_v dropout(h_i))  if passing_v, else h_i            [V = value_dim]
        b_k = sum_i a_ik v_i                           [K, V]  bag embedding, one row per class
        s_bag = Conv1d(K, K, kernel_size=V)(b)         [K]     bag_logits
    logits = (s_max + s_bag) / 2                                        mean of the two streams

The network is the reference's; the objective is chosen by `mil.objective` (models/model.py,
losses/dsmil_objective.py). The reference trains 0.5 * BCE(s_max, Y) + 0.5 * BCE(s_bag, Y) on
one-hot/multi-hot Y and predicts from s_bag (`mil.objective: dsmil`); kdsweep's default
(`mean_ce`) trains one label loss (softmax CE, focal, LDAM) on `logits`, the mean above, and
predicts from it. The bag classifier is the reference's Conv1d (weights port one to one): a kernel as
long as its input makes it a full linear map from the flattened [K * V] bag embedding to K
scores (each class score sees every class's embedding), not K separate per-class linears.

Batches: x is [B, N, *instance] with a mask [B, N] (True = real instance), so bags of different
sizes share a batch by padding. Padded instances never reach the encoder (BatchNorm statistics
and compute stay those of the real instances), cannot be critical and get attention exactly 0;
every output for a bag therefore equals the output for that bag alone, unpadded.
`build_dsmil` makes the encoder from any timm model; inputs are float images already
normalised the way the encoder expects.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from core.errors import ConfigError


@dataclass
class DSMILOutput:
    """Per bag b, instance n, class k: logits/bag_logits/max_logits [B, K]; instance_logits and
    attention [B, N, K]; critical [B, K] (long, index into N); features [B, N, D] (zero on
    padding); bag_embedding [B, K * V], the flattened class-wise bag embeddings (the input of
    the bag classifier, for feature-level distillation). Padded rows of instance_logits hold
    the classifier's bias: read them through the mask."""

    logits: Tensor
    bag_logits: Tensor
    max_logits: Tensor
    instance_logits: Tensor
    attention: Tensor
    critical: Tensor
    features: Tensor
    bag_embedding: Tensor


class DSMIL(nn.Module):
    """Dual-stream MIL over a shared instance encoder (see the module docstring).

    `instance_ndim` is the rank of one instance (3 for [C, H, W] images, 1 for pre-computed
    feature vectors with an `nn.Identity` encoder); it tells a single bag [N, *instance] from a
    batch [B, N, *instance]. `value_dim` only exists with `passing_v` (the reference's values
    are the raw features otherwise), and so does `dropout_v`."""

    def __init__(
        self,
        encoder: nn.Module,
        feature_dim: int,
        num_classes: int,
        query_dim: int = 128,
        value_dim: int | None = None,
        dropout_v: float = 0.0,
        nonlinear: bool = True,
        passing_v: bool = False,
        instance_ndim: int = 3,
    ) -> None:
        super().__init__()
        for name, val in (
            ("feature_dim", feature_dim),
            ("num_classes", num_classes),
            ("query_dim", query_dim),
        ):
            if int(val) < 1:
                raise ConfigError(f"dsmil.{name}: must be >= 1, got {val}")
        if not 0.0 <= dropout_v < 1.0:
            raise ConfigError(f"dsmil.dropout_v: must be in [0, 1), got {dropout_v}")
        if not passing_v and value_dim not in (None, feature_dim):
            raise ConfigError(
                "dsmil.value_dim: needs passing_v: true (values are the raw features otherwise)"
            )
        if not passing_v and dropout_v > 0:
            # The reference silently ignores it; a setting that does nothing would mislead a sweep.
            raise ConfigError("dsmil.dropout_v: needs passing_v: true (it acts on the value projection)")
        self.encoder = encoder
        self.feature_dim = int(feature_dim)  # instance feature width D
        self.num_classes = int(num_classes)
        self.query_dim = int(query_dim)
        self.value_dim = int(value_dim or feature_dim)
        self.embedding_dim = self.num_classes * self.value_dim  # width of bag_embedding
        self.instance_ndim = int(instance_ndim)
        d, k, q, v = self.feature_dim, self.num_classes, self.query_dim, self.value_dim

        self.instance_classifier = nn.Linear(d, k)
        if nonlinear:
            self.query: nn.Module = nn.Sequential(nn.Linear(d, q), nn.ReLU(), nn.Linear(q, q), nn.Tanh())
        else:
            self.query = nn.Linear(d, q)
        if passing_v:
            self.value: nn.Module = nn.Sequential(nn.Dropout(dropout_v), nn.Linear(d, v), nn.ReLU())
        else:
            self.value = nn.Identity()
        self.bag_classifier = nn.Conv1d(k, k, kernel_size=v)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> DSMILOutput:
        if x.dim() == self.instance_ndim + 1:  # one bag: add the batch axis
            x = x.unsqueeze(0)
            mask = None if mask is None else mask.unsqueeze(0)
        if x.dim() != self.instance_ndim + 2:
            raise ValueError(
                f"DSMIL expects [B, N, *instance] or [N, *instance] with {self.instance_ndim}-d "
                f"instances, got shape {tuple(x.shape)}"
            )
        b, n = x.shape[:2]
        if mask is None:
            mask = torch.ones(b, n, dtype=torch.bool, device=x.device)
        mask = mask.to(device=x.device, dtype=torch.bool)
        if mask.shape != (b, n):
            raise ValueError(f"mask must be [B, N] = {(b, n)}, got {tuple(mask.shape)}")
        if not bool(mask.any(dim=1).all()):
            raise ValueError("every bag needs at least one real instance (mask all False)")

        # Encode only the real instances, then scatter them back to [B, N, D] with zeros on padding.
        real = self.encoder(x[mask]).flatten(1)
        if real.shape[1] != self.feature_dim:
            raise ValueError(
                f"encoder gives {real.shape[1]} features, DSMIL was built for {self.feature_dim}"
            )
        feats = real.new_zeros(b, n, self.feature_dim)
        feats[mask] = real
        pad = ~mask[..., None]  # [B, N, 1]

        # Stream 1: instance scores; the critical instance of class k is its top real instance.
        inst = self.instance_classifier(feats)  # [B, N, K]
        critical = inst.masked_fill(pad, float("-inf")).argmax(dim=1)  # [B, K]
        max_logits = inst.gather(1, critical[:, None]).squeeze(1)  # [B, K], = max over real instances

        # Stream 2: attention of every instance's query to the critical instance's query.
        q = self.query(feats)  # [B, N, Q]
        q_crit = q.gather(1, critical[..., None].expand(-1, -1, q.shape[-1]))  # [B, K, Q]
        scores = torch.einsum("bnq,bkq->bnk", q, q_crit) / math.sqrt(self.query_dim)
        # Softmax in at least fp32 (autocast safety); -inf on padding makes its weight exactly 0.
        scores = scores.to(torch.promote_types(scores.dtype, torch.float32))
        attention = scores.masked_fill(pad, float("-inf")).softmax(dim=1)  # [B, N, K]
        values = self.value(feats).masked_fill(pad, 0.0)  # ReLU(bias) of a zero row is not zero
        emb = torch.einsum("bnk,bnv->bkv", attention.to(values.dtype), values)  # [B, K, V]
        bag_logits = self.bag_classifier(emb).squeeze(-1)  # [B, K]

        return DSMILOutput(
            logits=(max_logits + bag_logits) / 2,
            bag_logits=bag_logits,
            max_logits=max_logits,
            instance_logits=inst,
            attention=attention,
            critical=critical,
            features=feats,
            bag_embedding=emb.flatten(1),
        )


def build_dsmil(backbone: str, in_chans: int, num_classes: int, pretrained: bool = False, **kw: Any) -> DSMIL:
    """DSMIL whose instance encoder is the timm model `backbone` without its classifier
    (`num_classes=0`: pooled features). `kw` goes to `DSMIL` (query_dim, passing_v, ...)."""
    import timm  # lazily, as in models.backbones: importing models must stay cheap

    if not timm.is_model(backbone):
        near = difflib.get_close_matches(backbone, timm.list_models(), n=5, cutoff=0.6)
        hint = f" (closest: {', '.join(near)})" if near else " (see timm.list_models())"
        raise ConfigError(f"dsmil.backbone: unknown timm model {backbone!r}{hint}")
    try:
        net = timm.create_model(backbone, pretrained=pretrained, num_classes=0, in_chans=in_chans)
    except (TypeError, ValueError, RuntimeError, OSError) as e:
        raise ConfigError(
            f"dsmil.backbone: timm cannot build {backbone!r} ({str(e).splitlines()[0]})"
        ) from None
    # The pooled width is head_hidden_size, not always num_features: MobileNetV3's conv head
    # turns 288 channels into 1024 features after pooling.
    dim = int(getattr(net, "head_hidden_size", None) or net.num_features)
    return DSMIL(net, dim, num_classes, **kw)
