"""Feature matching (Salimans et al. 2016, "Improved Techniques for Training GANs", section 3.1).

D judges each sample on its own, so a generator that draws every kind of sample well but some kinds too
often or too rarely (one digit class 1.2 times as often as the data) passes it sample by sample. Feature
matching gives G a batch-level signal as well: with f the activations of D's last hidden layer, G also
descends

    lambda * mean_j (E_z[f_j(G(z))] - E_x[f_j(x)])^2,

the squared distance between the fake and the real batch's mean features, averaged over the features.
The mean features move with the mix of kinds in a batch, so the term pulls the mix towards the data's.
The paper uses it alone; here it is added to G's GAN loss with weight lambda (``--feature-matching``),
and D's own loss is unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor


def feature_matching_loss(fake_features: Tensor, real_features: Tensor) -> Tensor:
    """mean_j (mean_i f_ij(fake) - mean_i f_ij(real))^2 for (N, F) and (M, F) features (any trailing shape),
    in float32 at least (autocast's bf16 features included)."""
    dtype = torch.promote_types(fake_features.dtype, torch.float32)
    fake_mean = fake_features.to(dtype).flatten(1).mean(dim=0)
    real_mean = real_features.to(dtype).flatten(1).mean(dim=0)
    return (fake_mean - real_mean).square().mean()
