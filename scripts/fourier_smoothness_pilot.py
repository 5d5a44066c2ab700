"""fourier_density: the pilot that chose the smoothness weight γ (configs/experiment/fourier_density.yaml, #28).
Held-out NLL of FBDM (N = 50, Adam 2000 steps) on both sharp mixtures, seed 99 (never used by the runs), for
each γ of a grid; one batch, one fit per γ. Run (about 2 CPU-minutes):
    OMP_NUM_THREADS=1 .venv/bin/python scripts/fourier_smoothness_pilot.py
"""
import time
from types import SimpleNamespace

import numpy as np
import torch

from kexue_runs.experiments.fourier_density import evaluate, evaluation_grid, target
from kexue_runs.methods.fourier_density import FourierDensity, density_roughness

torch.set_num_threads(1)
gammas = torch.tensor([0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2], dtype=torch.float64)
for name in ["sharp_mixture", "laplace_mixture"]:
    dist, modes = target(name)
    rng = np.random.default_rng(99)
    train = torch.tensor(dist.rvs(size=2000, random_state=rng)).expand(len(gammas), -1)
    held = torch.tensor(dist.rvs(size=2000, random_state=rng)).expand(len(gammas), -1)
    t = time.time()
    m = FourierDensity(50, train.mean(-1), train.std(-1), generator=torch.Generator().manual_seed(99))
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(2000):
        loss = -m.log_prob(train).mean(-1).sum() + (gammas * density_roughness(m.coefficients())).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    grid = evaluation_grid(dist, SimpleNamespace(grid=20001))
    lq = m.log_prob(torch.tensor(grid).expand(len(gammas), -1)).detach().numpy()
    hnll = -m.log_prob(held).mean(-1).detach().numpy()
    for i, g in enumerate(gammas.tolist()):
        e = evaluate(lq[i], grid, dist, modes)
        print(f"{name} gamma={g:g} heldout_nll={hnll[i]:.4f} kl={e['kl']:.4f} modes={e['modes_recovered']} "
              f"spurious={e['spurious_peaks']} peaks={e['peaks']}")
    print("time", time.time() - t)
