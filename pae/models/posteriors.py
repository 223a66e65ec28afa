"""Gaussian posteriors q(z | x) from a flat parameter vector (an encoder's output, or a VAD latent's parameters):
diagonal (mean, log-variance; or the mean alone, with one fixed log-variance) or full covariance (mean, Cholesky
factor with a positive diagonal). Both return
torch.distributions objects, so sampling (reparameterised) and the KL to the N(0, I) prior are the library's."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import distributions as D


class DiagonalGaussian:
    """N(mean, diag(exp(logvar))). With `logvar` a number, every posterior has that log-variance and its parameters
    are the mean alone (the VAD authors' `--log_var`)."""

    def __init__(self, dim: int, logvar: float | None = None):
        self.dim, self.logvar = dim, logvar

    def n_params(self) -> int:
        return self.dim if self.logvar is not None else 2 * self.dim

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return params[:, :self.dim]

    def distribution(self, params: torch.Tensor) -> D.Distribution:
        mu = params[:, :self.dim].float()
        if self.logvar is not None:
            std = torch.full_like(mu, math.exp(0.5 * self.logvar))
        else:
            std = torch.exp(0.5 * params[:, self.dim:].float().clamp(-20, 10))
        return D.Independent(D.Normal(mu, std), 1)

    def prior(self, like: torch.Tensor) -> D.Distribution:
        zero = torch.zeros(like.shape[0], self.dim, device=like.device)
        return D.Independent(D.Normal(zero, torch.ones_like(zero)), 1)

    def init_params(self, n: int) -> torch.Tensor:
        """Parameters of n fresh posteriors: mean 0, variance 1 (the prior; or the fixed variance)."""
        return torch.zeros(n, self.n_params())


class FullGaussian:
    """Mean, then the d(d+1)/2 entries of a lower-triangular Cholesky factor (row-major); its diagonal goes through
    softplus (plus 1e-4) so the covariance stays positive definite."""

    def __init__(self, dim: int):
        self.dim = dim
        self._rows, self._cols = torch.tril_indices(dim, dim)
        self._diag = (self._rows == self._cols)

    def n_params(self) -> int:
        return self.dim + self.dim * (self.dim + 1) // 2

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return params[:, :self.dim]

    def scale_tril(self, params: torch.Tensor) -> torch.Tensor:
        raw = params[:, self.dim:].float()
        diag = self._diag.to(raw.device)
        values = torch.where(diag, F.softplus(raw) + 1e-4, raw)
        L = raw.new_zeros(raw.shape[0], self.dim, self.dim)
        L[:, self._rows.to(raw.device), self._cols.to(raw.device)] = values
        return L

    def distribution(self, params: torch.Tensor) -> D.Distribution:
        return D.MultivariateNormal(params[:, :self.dim].float(), scale_tril=self.scale_tril(params))

    def prior(self, like: torch.Tensor) -> D.Distribution:
        zero = torch.zeros(like.shape[0], self.dim, device=like.device)
        return D.MultivariateNormal(zero, scale_tril=torch.eye(self.dim, device=like.device).expand(len(zero), -1, -1))

    def init_params(self, n: int) -> torch.Tensor:
        params = torch.zeros(n, self.n_params())
        params[:, self.dim:][:, self._diag] = 0.5413  # softplus(0.5413) + 1e-4 = 1: identity covariance
        return params


POSTERIORS = {"diag": DiagonalGaussian, "full": FullGaussian}
