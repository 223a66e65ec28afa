"""Training: the auto-encoder training loop, its rolling checkpoint, and the distributed setup."""
