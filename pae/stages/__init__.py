"""The pipeline stages, one function per stage: the workflow rules call them through `python -m pae STAGE`
(pae/__main__.py), and so can a user by hand. Each reads its inputs, calls the library (pae.data, pae.models,
pae.flows, pae.eval, pae.report) and writes its outputs atomically.

  base.py       prepare, train, encode, fit_flow, evaluate, report, check-config
  quality.py    train_classifier (per dataset), fid: FID / domain Fréchet distance of samples and reconstructions
  ood.py        ood: out-of-distribution detection scores and AUROC / AUPR / FPR95
  posterior.py  posterior: inpainting and denoising with MAP, Laplace and MCMC posteriors
  impute.py     impute: missing-data imputation at several missing ratios
"""
