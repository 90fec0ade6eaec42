"""InfoGAN's mutual-information term (Chen et al. 2016) for a discrete latent code.

G is given a code c (here the latent component of :mod:`ganforge.models.components`) and an auxiliary
network Q (a second head on D) predicts c from G's sample. For a code drawn uniformly from K values,

    I(c; G(z, c)) >= E[log Q(c | G(z, c))] + H(c) = -CE + log K,

so G and Q both descend the cross-entropy CE of Q's prediction, weighted by lambda, beside their GAN
losses. G lowers it by making each code's samples unlike the others' - for data in separate clusters,
by sending the codes to different clusters.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def information_loss(code_logits: Tensor, codes: Tensor) -> Tensor:
    """-E[log Q(c | G(z, c))]: the mean cross-entropy of Q's logits (N, K) against the codes (N,) G was given."""
    return F.cross_entropy(code_logits.float(), codes)
