"""Per-class random intensities: a Gaussian mixture with one random mean and spread per class.

Three families of contrast are drawn (SynthSeg draws only the first): uniform random means for
every class, which teaches the network to rely on boundaries rather than on a contrast; and
T1-like and T2-like orderings of the tissues with random gaps, so the common contrasts are
well covered. Intensities are in arbitrary units of about 0..1; the scanner's scaling is
removed later by normalisation.
"""

from __future__ import annotations

import torch

from medseg.synth.classes import head_values
from medseg.synth.draws import uniform


def _ordered_means(n_brain: int, family: str, gen: torch.Generator) -> dict[str, float]:
    wm = uniform(gen, 0.55, 0.9)
    if family == "t1":
        return {"background": uniform(gen, 0.0, 0.06), "wm": wm, "gm": wm * uniform(gen, 0.55, 0.9),
                "csf": wm * uniform(gen, 0.05, 0.55), "skull": uniform(gen, 0.0, 0.15),
                "muscle": wm * uniform(gen, 0.35, 0.7), "fat": uniform(gen, 0.75, 1.0),
                "soft": wm * uniform(gen, 0.3, 0.8), "marrow": uniform(gen, 0.5, 1.0),
                "eye": wm * uniform(gen, 0.05, 0.45), "orbital_fat": uniform(gen, 0.75, 1.0),
                "air": uniform(gen, 0.0, 0.08)}
    # t2-like: CSF brightest, GM above WM, fat bright-ish, bone dark
    csf = uniform(gen, 0.75, 1.0)
    return {"background": uniform(gen, 0.0, 0.06), "wm": csf * uniform(gen, 0.2, 0.45),
            "gm": csf * uniform(gen, 0.45, 0.7), "csf": csf, "skull": uniform(gen, 0.0, 0.15),
            "muscle": csf * uniform(gen, 0.15, 0.4), "fat": csf * uniform(gen, 0.5, 0.9),
            "soft": csf * uniform(gen, 0.2, 0.7), "marrow": csf * uniform(gen, 0.3, 0.8),
            "eye": csf * uniform(gen, 0.75, 1.0), "orbital_fat": csf * uniform(gen, 0.5, 0.9),
            "air": uniform(gen, 0.0, 0.08)}


def draw_means(n_brain: int, gen: torch.Generator, p_random: float = 0.5,
               p_t1: float = 0.35) -> tuple[torch.Tensor, str]:
    """Mean intensity of every class (index = label value) and the family drawn.

    The brain classes of the T1/T2 families are WM, GM, CSF (values 1, 2, 3); a source with
    other brain classes always gets uniform random means."""
    n = n_brain + 1 + len(head_values(n_brain))
    head = head_values(n_brain)
    r = float(torch.rand((), generator=gen))
    if n_brain != 3 or r < p_random:
        means = torch.rand(n, generator=gen)
        if float(torch.rand((), generator=gen)) < 0.7:  # CSF outside the brain is still CSF
            means[head["extra_cerebral_csf"]] = means[n_brain]
        if float(torch.rand((), generator=gen)) < 0.7:  # air is dark on most MR images
            means[0] = 0.1 * float(torch.rand((), generator=gen))
        return means, "random"
    family = "t1" if r < p_random + p_t1 else "t2"
    m = _ordered_means(n_brain, family, gen)
    means = torch.empty(n)
    means[0], means[1], means[2], means[3] = m["background"], m["wm"], m["gm"], m["csf"]
    means[head["extra_cerebral_csf"]] = m["csf"]
    means[head["skull"]] = m["skull"]
    means[head["scalp_muscle"]] = m["muscle"]
    means[head["scalp_fat"]] = m["fat"]
    means[head["neck_soft_tissue"]] = m["soft"]
    means[head["skull_marrow"]] = m["marrow"]
    means[head["eye"]] = m["eye"]
    means[head["orbital_fat"]] = m["orbital_fat"]
    means[head["sinus_air"]] = m["air"]
    return means, family


def paint(labels: torch.Tensor, means: torch.Tensor, gen: torch.Generator,
          max_std: float = 0.06) -> torch.Tensor:
    """Image with each voxel drawn from its class's Gaussian (random spread per class)."""
    stds = torch.rand(means.shape[0], generator=gen) * max_std
    idx = labels.long()
    noise = torch.randn(labels.shape, generator=gen)
    return means[idx] + stds[idx] * noise
