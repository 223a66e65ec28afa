"""The posterior over an auto-encoder's latent given the observed pixels of a corrupted image, with the latent flow as
the prior (Böhm & Seljak 2022, sec. 4: the PAE's posterior for inpainting and denoising): multi-restart MAP, the
Laplace approximation at the MAP, and MCMC (Pyro's NUTS), plus the posterior predictive and its calibration.

Conventions. Pixels are on the [-0.5, 0.5] scale; z is (N, D), one row per image; x (N, C, H, W); a mask (N, 1 or C,
H, W) is 1 where a pixel is observed (None: all observed); sigma is a per-pixel std broadcastable to x. Every
function is batched over images, and each image's posterior is independent of the others'.

    -log p(z | x_obs) = 1/2 sum_obs [(x - decode(z))^2 / sigma^2 + log(2 pi sigma^2)] - log p_flow(z) + const

sigma^2 = sigma_pix^2 + noise_sigma^2: the decoder's own per-pixel error (pae.eval.residuals, the root mean square of
validation residuals) plus the variance of any noise added to the observation. flow=None means the prior N(0, I).
Values called neg_log_post are the expression above without the evidence (the constant).

The posterior predictive of a TRUE (clean) pixel, used for calibration (`coverage`), is the mixture over posterior
samples z_s of N(decode(z_s), sigma_pix^2): the decoder mean plus the model's own pixel error, without the noise that
was added to the observation (the truth is the clean image). It is exact for missing pixels of a model that is
right; on an observed noisy pixel it ignores that the observation also informs that pixel's own error, so coverage
there errs on the conservative side. The per-pixel posterior std (`predictive`) is the spread of decode(z_s) alone,
the latent uncertainty seen in pixel space.
"""
from __future__ import annotations

import logging
import math
import time
from typing import Callable, NamedTuple

import torch
from pyro.infer.mcmc import MCMC, NUTS
from torch import nn
from tqdm import tqdm

from pae.flows import LatentFlow
from pae.io import progress_kwargs

log = logging.getLogger(__name__)

LOG_2PI = math.log(2 * math.pi)
# Laplace: eigenvalues of the precision are replaced by max(|lambda|, EIG_FLOOR * max |lambda|) (a saddle's negative
# curvature counts by its magnitude, as in Betancourt's SoftAbs metric), which keeps the covariance positive definite.
EIG_FLOOR = 1e-6
JACOBIAN_CHUNK = 64  # images per vmap chunk of the decoder Jacobian (N * P * D floats at once otherwise)


class Observation(NamedTuple):
    """x (N, C, H, W); weight = mask / sigma^2 (N, C, H, W), 0 on missing pixels; const (N,) the likelihood's
    normalisation 1/2 sum_obs log(2 pi sigma^2)."""
    x: torch.Tensor
    weight: torch.Tensor
    const: torch.Tensor


def observation(x: torch.Tensor, mask: torch.Tensor | None, sigma: torch.Tensor | float) -> Observation:
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if (sigma <= 0).any():
        raise ValueError("sigma must be positive")
    mask = torch.ones_like(x[:, :1]) if mask is None else mask.to(x)
    var = torch.broadcast_to(sigma.pow(2), x.shape)
    weight = mask / var
    const = 0.5 * (mask * torch.log(2 * math.pi * var)).flatten(1).sum(1)
    return Observation(x, weight, const)


def log_prior(flow: LatentFlow | None, z: torch.Tensor) -> torch.Tensor:
    """log p(z) (N,) of latents (N, D): the flow's, or the standard normal's for flow=None."""
    if flow is None:
        return -0.5 * (z.pow(2).sum(-1) + z.shape[-1] * LOG_2PI)
    return flow.log_prob(z)


def neg_log_post(model: nn.Module, flow: LatentFlow | None, obs: Observation, z: torch.Tensor) -> torch.Tensor:
    """-log p(x_obs | z) - log p(z) for latents (..., N, D) of the N observed images -> (..., N)."""
    lead, dim = z.shape[:-1], z.shape[-1]
    flat = z.reshape(-1, dim)
    mean = model.decode(flat).view(*lead, *obs.x.shape[1:])
    nll = 0.5 * (obs.weight * (mean - obs.x).pow(2)).flatten(-3).sum(-1) + obs.const
    return nll - log_prior(flow, flat).view(lead)


def _prior_draws(flow: LatentFlow | None, n: int, dim: int, generator: torch.Generator | None,
                 like: torch.Tensor) -> torch.Tensor:
    if flow is None:
        return torch.randn(n, dim, generator=generator, dtype=like.dtype).to(like.device)
    return flow.sample(n, generator=generator).to(like)


def _starts(flow: LatentFlow | None, init: torch.Tensor | None, restarts: int, x: torch.Tensor,
            generator: torch.Generator | None) -> torch.Tensor:
    """(restarts, N, D): init first (when given), then draws from the prior."""
    if flow is None and init is None:
        raise ValueError("map_estimate with the N(0, I) prior (flow=None) needs init to know the latent size")
    dim = flow.dim if flow is not None else init.shape[1]
    draws = restarts - (init is not None)
    like = x if init is None else init.to(x)
    parts = [] if init is None else [like[None]]
    if draws > 0:
        parts.append(_prior_draws(flow, draws * len(x), dim, generator, like).view(draws, len(x), dim))
    return torch.cat(parts)


def map_estimate(model: nn.Module, flow: LatentFlow | None, x: torch.Tensor, mask: torch.Tensor | None,
                 sigma: torch.Tensor | float, *, restarts: int, steps: int, lr: float, init: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The MAP latent of each image and its neg_log_post: (z (N, D), (N,)). Adam on the summed per-image objectives
    (Adam is elementwise, so the images' optimisations are exactly independent), the learning rate decayed to 0 along
    a cosine over `steps`, from `restarts` starts: `init` (e.g. the encoder's latent of the corrupted image) if given,
    then draws from the prior (flow.sample with `generator`). Per image, the start with the lowest final objective
    is kept (a start that diverged, NaN, never is). All starts run as one batch."""
    if restarts < 1 or steps < 0:
        raise ValueError(f"need restarts >= 1 and steps >= 0, got {restarts}, {steps}")
    obs = observation(x, mask, sigma)
    z = _starts(flow, init, restarts, x, generator).detach().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
    with torch.enable_grad():
        for _ in range(steps):
            z.grad, = torch.autograd.grad(neg_log_post(model, flow, obs, z).sum(), z)
            opt.step()
            schedule.step()
    with torch.no_grad():
        final = neg_log_post(model, flow, obs, z).nan_to_num(nan=math.inf)  # (restarts, N)
    best = final.argmin(0)
    rows = torch.arange(len(x), device=best.device)
    return z.detach()[best, rows], final[best, rows]


def decoder_jacobian(model: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """d decode(z) / dz per image: (N, C*H*W, D), forward mode (D tangents) batched over images with torch.func."""
    def single(v: torch.Tensor) -> torch.Tensor:
        return model.decode(v[None]).flatten()
    return torch.func.vmap(torch.func.jacfwd(single), chunk_size=JACOBIAN_CHUNK)(z.detach())


def batched_hessian(fn: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor) -> torch.Tensor:
    """Hessians (N, D, D) of fn: (N, D) -> (N,) whose rows depend on their own z row only: D backward passes of the
    batch-summed gradient (works for any module, e.g. nflows transforms that torch.func cannot vmap)."""
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        grad, = torch.autograd.grad(fn(z).sum(), z, create_graph=True)
        rows = [torch.autograd.grad(grad[:, d].sum(), z, retain_graph=True, allow_unused=True,
                                    materialize_grads=True)[0] for d in range(z.shape[1])]
    return torch.stack(rows, 1).detach()


def _gauss_newton(model: nn.Module, flow: LatentFlow | None, obs: Observation, z: torch.Tensor) -> torch.Tensor:
    """J^T diag(mask / sigma^2) J + the prior's exact Hessian."""
    jac = decoder_jacobian(model, z)
    likelihood = jac.mT @ (obs.weight.flatten(1)[..., None] * jac)
    return likelihood + batched_hessian(lambda v: -log_prior(flow, v), z)


def _exact_hessian(model: nn.Module, flow: LatentFlow | None, obs: Observation, z: torch.Tensor) -> torch.Tensor:
    return batched_hessian(lambda v: neg_log_post(model, flow, obs, v), z)


# curvature -> precision(model, flow, observation, z_map) (N, D, D)
CURVATURES: dict[str, Callable[..., torch.Tensor]] = {"gauss_newton": _gauss_newton, "hessian": _exact_hessian}


def _covariance(precision: torch.Tensor) -> torch.Tensor:
    """Symmetrised precision -> covariance, eigenvalues made positive (EIG_FLOOR); in float64."""
    p = 0.5 * (precision + precision.mT).double()
    evals, evecs = torch.linalg.eigh(p)
    fixed = evals.abs().clamp_min(EIG_FLOOR * evals.abs().amax(-1, keepdim=True))
    n_fixed = int((fixed != evals).any(-1).sum())
    if n_fixed:
        log.info("Laplace: %d of %d precisions not positive definite at the MAP; eigenvalues replaced by "
                 "max(|lambda|, %g max |lambda|)", n_fixed, len(p), EIG_FLOOR)
    return (evecs / fixed[..., None, :]) @ evecs.mT


def laplace(model: nn.Module, flow: LatentFlow | None, x: torch.Tensor, mask: torch.Tensor | None,
            sigma: torch.Tensor | float, z_map: torch.Tensor, *, curvature: str = "gauss_newton") -> torch.Tensor:
    """The Laplace approximation N(z_map, cov) of each image's posterior: cov (N, D, D) in z_map's dtype, the inverse
    of the likelihood's curvature (Gauss-Newton, or the exact Hessian of the negative log-likelihood) plus the exact
    Hessian of -log p_flow, at z_map. Not positive definite: see EIG_FLOOR. The two curvatures differ by the
    residual-weighted second derivatives of the decoder, which vanish for a piecewise-linear decoder (the LeakyReLU
    conv and mlp architectures): there they coincide and Gauss-Newton is the cheaper."""
    if curvature not in CURVATURES:
        raise ValueError(f"unknown curvature {curvature!r}; known: {sorted(CURVATURES)}")
    precision = CURVATURES[curvature](model, flow, observation(x, mask, sigma), z_map.detach())
    return _covariance(precision).to(z_map.dtype)


def _cholesky(cov: torch.Tensor) -> torch.Tensor:
    return torch.linalg.cholesky(cov.double()).to(cov.dtype)


def laplace_samples(z_map: torch.Tensor, cov: torch.Tensor, n: int, generator: torch.Generator | None = None
                    ) -> torch.Tensor:
    """n draws per image from N(z_map, cov): (n, N, D)."""
    eps = torch.randn(n, *z_map.shape, generator=generator, dtype=z_map.dtype).to(z_map.device)
    return z_map + torch.einsum("nde,sne->snd", _cholesky(cov), eps)


def nuts(model: nn.Module, flow: LatentFlow | None, x: torch.Tensor, mask: torch.Tensor | None,
         sigma: torch.Tensor | float, z_map: torch.Tensor, cov: torch.Tensor, *, samples: int, warmup: int,
         max_tree_depth: int, seed: int) -> tuple[torch.Tensor, dict]:
    """Posterior samples by Pyro's NUTS: (z (samples, N, D), diagnostics). One chain on all images at once (the joint
    potential is a sum of independent per-image terms, so it samples every image's posterior), in whitened
    coordinates z = z_map + L eps, L L^T = cov (the Laplace fit: the target is near-isotropic, so short trajectories
    do; the map is affine, its Jacobian constant). Warmup adapts the step size (target acceptance 0.8) and a diagonal
    mass matrix on eps, which rescales the images whose posterior is wider or narrower than its Laplace fit. One
    step size serves all images, so the least Gaussian posterior sets it. Seeded through torch's RNG, which is all
    Pyro's HMC/NUTS draw from, inside torch.random.fork_rng, so the caller's random streams are left as they were.

    diagnostics: step_size, acceptance_rate (post-warmup share of iterations that moved), divergences,
    gradient evaluations per iteration, and the effective sample size of eps (min, median over the N * D
    coordinates)."""
    obs = observation(x, mask, sigma)
    z0, chol = z_map.detach(), _cholesky(cov.detach())
    evals = [0]

    def potential(params: dict[str, torch.Tensor]) -> torch.Tensor:
        evals[0] += 1
        return neg_log_post(model, flow, obs, z0 + torch.einsum("nde,ne->nd", chol, params["eps"])).sum()

    kernel = NUTS(potential_fn=potential, adapt_step_size=True, adapt_mass_matrix=True, full_mass=False,
                  max_tree_depth=max_tree_depth)
    bar = tqdm(total=warmup + samples, desc="nuts", **progress_kwargs())
    mcmc = MCMC(kernel, num_samples=samples, warmup_steps=warmup, initial_params={"eps": torch.zeros_like(z0)},
                disable_progbar=True, hook_fn=lambda *_: bar.update())
    devices = [z0.device] if z0.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.enable_grad():
        torch.manual_seed(seed)
        mcmc.run()
    bar.close()
    eps = mcmc.get_samples()["eps"]
    diag = mcmc.diagnostics()
    n_eff = diag["eps"]["n_eff"].flatten()
    info = {"step_size": float(kernel.step_size), "acceptance_rate": float(diag["acceptance rate"]["chain 0"]),
            "divergences": len(diag["divergences"]["chain 0"]),
            "grad_evals_per_iteration": evals[0] / (warmup + samples),
            "n_eff_min": float(n_eff.min()), "n_eff_median": float(n_eff.median())}
    log.info("NUTS on %d images x %d dimensions: step size %.3g, acceptance %.2f, %d divergences, %.1f gradient "
             "evaluations per iteration, effective sample size min %.1f, median %.1f of %d", *z0.shape,
             info["step_size"], info["acceptance_rate"], info["divergences"], info["grad_evals_per_iteration"],
             info["n_eff_min"], info["n_eff_median"], samples)
    if info["acceptance_rate"] < 0.1:
        log.warning("NUTS hardly moved (acceptance %.2f, %d divergences): its samples are not a posterior; give it a "
                    "longer warmup (eval.posterior.mcmc_warmup, now %d)", info["acceptance_rate"],
                    info["divergences"], warmup)
    return z0 + torch.einsum("nde,sne->snd", chol, eps), info


class Predictive(NamedTuple):
    """The decoded posterior samples (S, N, C, H, W), their mean and their (population) std per pixel."""
    mean: torch.Tensor
    std: torch.Tensor
    samples: torch.Tensor


@torch.no_grad()
def predictive(model: nn.Module, z_samples: torch.Tensor, batch_size: int = 1024) -> Predictive:
    """Decode latent samples (S, N, D) in batches: the posterior-mean image, per-pixel std and the decoded samples."""
    flat = z_samples.reshape(-1, z_samples.shape[-1])
    decoded = torch.cat([model.decode(flat[i:i + batch_size]) for i in range(0, len(flat), batch_size)])
    decoded = decoded.view(*z_samples.shape[:2], *decoded.shape[1:])
    return Predictive(decoded.mean(0), decoded.std(0, correction=0), decoded)


# region -> the pixels it selects, from a mask (1 = observed)
REGIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "missing": lambda mask: mask == 0,
    "observed": lambda mask: mask != 0,
    "all": lambda mask: torch.ones_like(mask, dtype=torch.bool),
}


@torch.no_grad()
def coverage(truth: torch.Tensor, samples_decoded: torch.Tensor, sigma: torch.Tensor | float,
             mask: torch.Tensor | None = None, *, levels: tuple[float, ...] = (0.68, 0.95), region: str = "all"
             ) -> dict[float, float]:
    """Calibration: per level, the fraction of true pixels (N, C, H, W) in `region` (missing | observed | all, by the
    mask) that lie inside the central credible interval of the predictive mixture (1/S) sum_s N(samples_s, sigma^2)
    (samples_decoded (S, N, C, H, W); sigma: sigma_pix, see the module docstring). A pixel is inside the central
    `level` interval iff its predictive CDF F(truth) lies within 1/2 +- level/2."""
    if region not in REGIONS:
        raise ValueError(f"unknown region {region!r}; known: {sorted(REGIONS)}")
    sigma = torch.as_tensor(sigma, dtype=truth.dtype, device=truth.device)
    cdf = torch.special.ndtr((truth - samples_decoded) / sigma).mean(0)
    mask = torch.ones_like(truth[:, :1]) if mask is None else mask.to(truth)
    selected = torch.broadcast_to(REGIONS[region](mask), truth.shape)
    if not selected.any():
        raise ValueError(f"no {region} pixels to compute the coverage on")
    distance = (cdf[selected] - 0.5).abs()
    return {level: (distance <= level / 2).double().mean().item() for level in levels}


# ------------------------------------------------------------------ the posterior stage's methods, on given images
# fit_posteriors is what the posterior stage runs on each corruption and what pae.api's posterior runs on a user's
# images: one implementation, so that the two give the same numbers on the same inputs.

METHODS = ("map", "laplace", "mcmc")  # in the order they are fitted; each starts from the ones before it
LEVELS = (0.68, 0.95)  # the credible levels whose coverage the posterior stage reports


class Fit(NamedTuple):
    """One method's posterior: its predictive (decoded samples, their mean and std), its latent samples z (S, N, D)
    (the MAP's: (1, N, D)) and its record (reconstruction, seconds and the method's own figures, as posterior.json
    has them)."""
    predictive: Predictive
    z: torch.Tensor
    record: dict


def timed(fn: Callable, device: torch.device):
    """(fn(), seconds), the device synchronised so that queued GPU work is counted."""
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    sync()
    t0 = time.perf_counter()
    out = fn()
    sync()
    return out, time.perf_counter() - t0


@torch.no_grad()
def encoder_init(model: nn.Module, x: torch.Tensor, mask: torch.Tensor, seed: int) -> torch.Tensor:
    """The model's latent of the corrupted image (the encoder; a VAD's test-time optimisation, on observed pixels),
    seeded for a VAD's random posterior draws: the MAP's first start."""
    devices = [x.device] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return model.encode(x, mask)


def fit_posteriors(model: nn.Module, flow: LatentFlow | None, x: torch.Tensor, mask: torch.Tensor,
                   sigma: torch.Tensor, spec: dict, device: torch.device, last: str = "mcmc"
                   ) -> dict[str, Fit]:
    """The posteriors of the observed images x (N, C, H, W) on [-0.5, 0.5] (missing pixels 0) with their mask
    (N, 1, H, W), 1 = observed, and likelihood sigma (sigma_pix combined with any added noise), for the METHODS up to
    `last`: method -> its Fit.

    spec holds the eval.posterior settings: seed, restarts, map_steps, map_lr (the MAP from the encoder's latent and
    restarts - 1 flow draws), laplace (the curvature), posterior_samples (Laplace and NUTS draws), mcmc_images (NUTS
    on the first that many images, one joint chain), mcmc_warmup and mcmc_max_tree_depth. Every random draw is seeded
    from spec["seed"]."""
    if last not in METHODS:
        raise ValueError(f"unknown posterior method {last!r}; known: {list(METHODS)}")
    wanted = METHODS[:METHODS.index(last) + 1]
    seed, n_samples = spec["seed"], spec["posterior_samples"]

    def run_map():
        return map_estimate(model, flow, x, mask, sigma, restarts=spec["restarts"], steps=spec["map_steps"],
                            lr=spec["map_lr"], init=encoder_init(model, x, mask, seed),
                            generator=torch.Generator().manual_seed(seed))
    (z_map, nlp), t_map = timed(run_map, device)
    out = {"map": Fit(predictive(model, z_map[None]), z_map[None], {
        "reconstruction": "map", "seconds": t_map, "neg_log_post_mean": nlp.double().mean().item()})}
    if "laplace" not in wanted:
        return out

    def run_laplace():
        cov = laplace(model, flow, x, mask, sigma, z_map, curvature=spec["laplace"])
        return cov, laplace_samples(z_map, cov, n_samples, torch.Generator().manual_seed(seed))
    (cov, z_laplace), t_laplace = timed(run_laplace, device)
    out["laplace"] = Fit(predictive(model, z_laplace), z_laplace, {
        "reconstruction": "posterior_mean", "seconds": t_laplace, "curvature": spec["laplace"]})
    if "mcmc" in wanted:
        k = min(spec["mcmc_images"], len(x))  # NUTS on the first k images (one joint chain; see mcmc_images)
        (z_mcmc, diagnostics), t_mcmc = timed(lambda: nuts(
            model, flow, x[:k], mask[:k], sigma, z_map[:k], cov[:k], samples=n_samples, warmup=spec["mcmc_warmup"],
            max_tree_depth=spec["mcmc_max_tree_depth"], seed=seed), device)
        out["mcmc"] = Fit(predictive(model, z_mcmc), z_mcmc, {
            "reconstruction": "posterior_mean", "seconds": t_mcmc, "n_images": k, **diagnostics})
    return out


def _mse(recon: torch.Tensor, truth: torch.Tensor, region: torch.Tensor) -> float | None:
    n = region.sum()
    return ((recon - truth).pow(2) * region).sum().item() / n.item() if n > 0 else None


def _mean_over(values: torch.Tensor, region: torch.Tensor) -> float | None:
    n = region.sum()
    return (values * region).sum().item() / n.item() if n > 0 else None


def _coverage(truth, decoded, sigma_pix, mask, region: str, has_region: bool) -> dict | None:
    if not has_region:
        return None
    return {f"{k:g}": v for k, v in coverage(truth, decoded, sigma_pix, mask, levels=LEVELS, region=region).items()}


def method_metrics(truth: torch.Tensor, mask: torch.Tensor, pred: Predictive, sigma_pix: torch.Tensor) -> dict:
    """The posterior stage's scores of one method's predictive against the clean truth (N, C, H, W) on [-0.5, 0.5]:
    mse_missing, mse_all (per pixel; mse_missing None without missing pixels), posterior_std_missing / _all (mean
    per-pixel std of the decoded samples) and coverage_missing / _all at LEVELS ({"0.68": fraction, ...}); the
    reconstruction is pred.mean (for the MAP, decode(z_map))."""
    missing = torch.broadcast_to(mask == 0, truth.shape).to(truth)
    everywhere = torch.ones_like(truth)
    has_missing = bool(missing.any())
    return {"mse_missing": _mse(pred.mean, truth, missing), "mse_all": _mse(pred.mean, truth, everywhere),
            "posterior_std_missing": _mean_over(pred.std, missing),
            "posterior_std_all": _mean_over(pred.std, everywhere),
            "coverage_missing": _coverage(truth, pred.samples, sigma_pix, mask, "missing", has_missing),
            "coverage_all": _coverage(truth, pred.samples, sigma_pix, mask, "all", True)}
