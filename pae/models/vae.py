"""The variational auto-encoder (Kingma & Welling 2014) and beta-VAE (Higgins et al. 2017; capacity-annealed as in
Burgess et al. 2018), and the Variational Auto-Decoder (Zadeh et al. 2019): the same ELBO, with q(z | x) given by an
encoder (VAE) or by free per-item parameters optimised with the decoder (VAD; at test time by gradient descent on
the parameters alone, the decoder frozen).

ELBO(x) = E_q[log p(x | z)] - KL(q(z | x) || N(0, I)), one reparameterised sample per step in training. With a mask
(1 = observed) the likelihood covers observed pixels only and the encoder sees missing pixels as 0 (mid-grey).
Training minimises  nll + beta * KL  (beta = 1: the VAE), or with a capacity C,  nll + gamma * |KL - C(t)|, C(t)
growing linearly from 0 to C over `capacity_steps` steps.
"""
from __future__ import annotations

import torch
from torch import distributions as D
from torch import nn

from pae.models.likelihoods import Likelihood


class _LatentVariableModel(nn.Module):
    """What VAE and VAD share: decoder, likelihood, posterior family, the ELBO and the beta/capacity objective."""
    needs_index = False

    def __init__(self, decoder: nn.Module, likelihood: Likelihood, posterior, beta: float = 1.0,
                 capacity: float | None = None, capacity_steps: int = 10_000, gamma: float = 1000.0):
        super().__init__()
        self.decoder, self.likelihood, self.posterior = decoder, likelihood, posterior
        self.beta, self.capacity, self.capacity_steps, self.gamma = beta, capacity, capacity_steps, gamma
        self.register_buffer("steps_seen", torch.zeros((), dtype=torch.int64))  # for the capacity schedule

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.likelihood.mean(self.decoder(z))

    def elbo_terms(self, x: torch.Tensor, params: torch.Tensor, mask: torch.Tensor | None = None,
                   samples: int = 1, training_loss: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(-E_q log p(x | z), KL) per sample, the expectation over `samples` reparameterised draws."""
        q = self.posterior.distribution(params)
        kl = D.kl_divergence(q, self.posterior.prior(params))
        nll = 0
        for _ in range(samples):
            out = self.decoder(q.rsample())
            nll = nll + (self.likelihood.loss if training_loss else self.likelihood.nll)(out, x, mask)
        return nll / samples, kl

    def _objective(self, nll: torch.Tensor, kl: torch.Tensor) -> torch.Tensor:
        if self.capacity is None:
            return (nll + self.beta * kl).mean()
        if self.training:
            self.steps_seen += 1
        c = self.capacity * (self.steps_seen.float() / self.capacity_steps).clamp(max=1.0)  # no host sync
        return (nll + self.gamma * (kl - c).abs()).mean()


class VAE(_LatentVariableModel):
    def __init__(self, encoder: nn.Module, decoder: nn.Module, likelihood: Likelihood, posterior, **objective):
        super().__init__(decoder, likelihood, posterior, **objective)
        self.encoder = encoder

    def posterior_params(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.encoder(x if mask is None else x * mask)

    def encode(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The posterior mean (the latent a PAE flow is fitted on)."""
        return self.posterior.mean(self.posterior_params(x, mask))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def loss(self, x: torch.Tensor, mask: torch.Tensor | None = None, idx: torch.Tensor | None = None
             ) -> torch.Tensor:
        nll, kl = self.elbo_terms(x, self.posterior_params(x, mask), mask, training_loss=True)
        return self._objective(nll, kl)


class VAD(_LatentVariableModel):
    """No encoder: `latents[i]` holds the posterior parameters of training item i (its position in the train split),
    learnt jointly with the decoder. New images get theirs by `infer` (decoder frozen)."""
    needs_index = True

    def __init__(self, decoder: nn.Module, likelihood: Likelihood, posterior, n_items: int, infer_steps: int = 300,
                 infer_lr: float = 0.05, init_std: float | None = None, **objective):
        super().__init__(decoder, likelihood, posterior, **objective)
        if n_items < 1:
            raise ValueError("a VAD needs the number of training items (n_items)")
        self.infer_steps, self.infer_lr, self.init_std = infer_steps, infer_lr, init_std
        self.latents = nn.Parameter(self.init_params(n_items))

    def init_params(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Posterior parameters of n items before optimisation: the prior's, or with `init_std` the means drawn from
        N(0, init_std^2) (the VAD authors start test latents at N(0, 0.001^2))."""
        params = self.posterior.init_params(n)
        if self.init_std is not None:
            params[:, :self.posterior.dim] = self.init_std * torch.randn(n, self.posterior.dim, generator=generator)
        return params

    def loss(self, x: torch.Tensor, mask: torch.Tensor | None = None, idx: torch.Tensor | None = None
             ) -> torch.Tensor:
        if idx is None:
            raise ValueError("VAD.loss needs the items' indices in the training split")
        nll, kl = self.elbo_terms(x, self.latents[idx], mask, training_loss=True)
        return self._objective(nll, kl)

    @torch.enable_grad()
    def infer(self, x: torch.Tensor, mask: torch.Tensor | None = None, steps: int | None = None,
              generator: torch.Generator | None = None) -> torch.Tensor:
        """Posterior parameters for new images: minimise the training objective (nll + beta KL) over the parameters
        alone (Adam), decoder frozen. Batched: each image's objective depends only on its own parameters."""
        params = self.init_params(len(x), generator).to(x.device).requires_grad_(True)
        opt = torch.optim.Adam([params], lr=self.infer_lr)
        frozen = [p.requires_grad for p in self.decoder.parameters()]
        for p in self.decoder.parameters():
            p.requires_grad_(False)
        try:
            for _ in range(steps or self.infer_steps):
                nll, kl = self.elbo_terms(x, params, mask)
                opt.zero_grad(set_to_none=True)
                (nll + self.beta * kl).sum().backward()
                opt.step()
        finally:
            for p, f in zip(self.decoder.parameters(), frozen):
                p.requires_grad_(f)
        return params.detach()

    def posterior_params(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.infer(x, mask)

    def encode(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.posterior.mean(self.infer(x, mask))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))
