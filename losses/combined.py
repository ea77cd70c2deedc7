"""`combined`: logit KD plus per-modality feature alignment of the student to the teacher.

    L = L_logit + beta * [ w_img * mean_b (1 - cos(P_img s_img, t_img))
                         + w_txt * mean_b (1 - cos(P_txt s_txt, t_txt)) ]

L_logit is the Hinton KD convention of `losses.base` (alpha * T^2 * KL(p_t || p_s) +
(1 - alpha) * label). The alignment follows the hint/feature-matching family (FitNets, Romero
et al., ICLR 2015: a trainable regressor maps the student's features into the teacher's space),
with the cosine distance of L2-normalised vectors instead of FitNets' raw squared error, so the
term is bounded in [0, 2] per modality and independent of feature scale. (The squared L2
distance of the normalised pair is 2 * (1 - cos): the same objective, twice the weight.)

Convention: `student.image` / `student.text` (per-modality features at the fusion width) are
aligned with `teacher.image` / `teacher.text`. Only the student is projected (one trainable map
P per modality, student_dim -> teacher_dim); both sides are L2-normalised; the teacher is
detached (the `align` term, losses/terms/align.py), so the term cannot collapse by moving the
teacher and no gradient reaches it. A modality that is None on either side (image-only or
text-only ablation) contributes no term: the names are then just the present ones. Terms:
``align_image``, ``align_text`` (already multiplied by beta and their weight). fp32.

YAML::

    loss: {name: combined, alpha: 0.5, temperature: 4.0, beta: 1.0,
           params: {image_weight: 0.5, text_weight: 0.5}}

Magnitude at initialisation: with an untrained projection the cosine is ~0, so each term is ~0.5
* beta and their sum ~1.0. Measured by `tests/test_losses.py::measured_ratio` (printed by
`PYTHONPATH=. python tests/test_losses.py`): default config (alpha 0.5, beta 1, default params),
random N(0, 1) logits and features, student_dim 64, teacher_dim 96, B 32, tasks of 3 and 4
classes, n_train 50, mean over 20 seeds of (sum of the feature terms) / (the "ce" term, 1.58
there); `test_feature_to_ce_ratio_at_init` keeps the number below within 10%. Measured:
align_image 0.50, align_text 0.50, feature / ce = 0.64. The default weights (0.5 per modality)
were chosen so that the two alignments together weigh about as much as the label term.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.schema import non_negative
from losses.base import LOSSES
from losses.composed import Preset, TermSpec


@dataclass(frozen=True)
class CombinedParams:
    image_weight: float = non_negative(default=0.5)  # weight of align_image (inside beta)
    text_weight: float = non_negative(default=0.5)  # weight of align_text (inside beta)


@LOSSES.register("combined")
class CombinedKD(Preset):
    Params = CombinedParams

    def term_list(self) -> list[TermSpec]:
        beta, p = self.cfg.beta, self.params
        weights = {"image": p.image_weight, "text": p.text_weight}
        return self.kd_terms() + [
            TermSpec(
                term="align",
                name=f"align_{m}",
                weight=beta * w,
                params={
                    "feature": m,
                    "metric": "cosine",
                    "project": "student",
                    "trained": self.trains_params,
                },
            )
            for m, w in weights.items()
        ]

    def feature_formula(self) -> str:
        p = self.params
        return (
            f" + {self.cfg.beta:g}*[{p.image_weight:g}*(1 - cos(P_img s_img, t_img))"
            f" + {p.text_weight:g}*(1 - cos(P_txt s_txt, t_txt))]" + self.fixed_or_trained("P")
        )
