"""隐藏在动量中的梯度累积：少更新几步，效果反而更好？ (gradient accumulation hidden in momentum)
https://kexue.fm/archives/8634

SGD with momentum accumulates k steps of gradients without a buffer of its own (χ_{t/k} = 1 when k divides t):
    m_t = [(β - 1) χ_{(t-1)/k} + 1] m_{t-1} + (1 - β)/k g_t,        θ_t = θ_{t-1} - χ_{t/k} α m_t
i.e. momentum over the k-step averages, updating every k steps. Applied to Adam's two moments it is only
an approximation of true accumulation (the second moment of a mean is not the mean of second moments).
The cheap recipe: plain momentum with β̃ = 1 - (1 - β)/k (β̃^k ≈ β), parameters moved every k-th step.
Adam here puts ε outside the square root, as torch and Keras do (the post writes √(v̂ + ε)).
"""

from __future__ import annotations

import torch


class AccumulatingSGDM(torch.optim.Optimizer):
    """The post's χ-form SGDM: momentum state only, a parameter update every k-th step."""

    def __init__(self, params, lr: float, beta: float, k: int):
        super().__init__(params, {"lr": lr, "beta": beta, "k": k})
        self.t = 0

    @torch.no_grad()
    def step(self):
        self.t += 1
        for group in self.param_groups:
            beta, k, lr = group["beta"], group["k"], group["lr"]
            chi_prev = (self.t - 1) % k == 0  # χ_{(t-1)/k}: a new accumulation window starts
            for p in group["params"]:
                if p.grad is None:
                    continue
                m = moment(self.state[p], "m", p)
                m.mul_((beta - 1) * chi_prev + 1).add_(p.grad, alpha=(1 - beta) / k)
                if self.t % k == 0:
                    step, _ = scratch(self.state[p], p)
                    p.sub_(torch.mul(m, lr, out=step))  # lr * m


class AccumulatingAdam(torch.optim.Optimizer):
    """The same edit applied to Adam's first and second moments (the post: only an approximation)."""

    def __init__(self, params, lr: float, betas=(0.9, 0.999), eps: float = 1e-8, k: int = 1):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "k": k})
        self.t = 0

    @torch.no_grad()
    def step(self):
        self.t += 1
        for group in self.param_groups:
            (b1, b2), k, lr, eps = group["betas"], group["k"], group["lr"], group["eps"]
            chi_prev = (self.t - 1) % k == 0
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                m, v = moment(state, "m", p), moment(state, "v", p)
                step, denom = scratch(state, p)
                m.mul_((b1 - 1) * chi_prev + 1).add_(p.grad, alpha=(1 - b1) / k)
                v.mul_((b2 - 1) * chi_prev + 1).add_(torch.pow(p.grad, 2, out=step), alpha=(1 - b2) / k)
                if self.t % k == 0:
                    updates = self.t // k  # bias correction with β^(t/k)
                    adam_update(p, m, v, 1 - b1 ** updates, 1 - b2 ** updates, lr, eps, step, denom)


def moment(state: dict, name: str, p: torch.Tensor) -> torch.Tensor:
    """The moment `name` in p's state, zeros at first (not setdefault: it would build the zeros every step)."""
    if name not in state:
        state[name] = torch.zeros_like(p)
    return state[name]


def scratch(state: dict, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two buffers of p's shape kept in its state: the update's temporaries are written into them rather than
    into fresh tensors (on stacked replicates' parameters, allocating them each step cost more than the math)."""
    if "scratch" not in state:
        state["scratch"] = (torch.empty_like(p), torch.empty_like(p))
    return state["scratch"]


def adam_update(p, m, v, correction1: float, correction2: float, lr: float, eps: float, step, denom) -> None:
    """p -= lr m̂ / (√v̂ + ε) with m̂ = m / correction1, v̂ = v / correction2, in that order of operations,
    computed in the buffers step and denom."""
    torch.div(m, correction1, out=step).mul_(lr)
    torch.div(v, correction2, out=denom).sqrt_().add_(eps)
    p.sub_(step.div_(denom))


def adjusted_beta(beta: float, k: int) -> float:
    """β̃ = 1 - (1 - β)/k: updating every k steps with β̃ keeps momentum's memory in steps, β̃^k ≈ β."""
    return 1 - (1 - beta) / k


class PeriodicAdam(torch.optim.Optimizer):
    """Plain Adam whose moments move every step but whose parameters move only every k-th step
    (the post's "learning rate times χ_{t/k}"); with betas = adjusted_beta(β, k) it is the post's
    cheap recipe, with k = 1 it is Adam. Bias correction uses the step count t, as Adam's does."""

    def __init__(self, params, lr: float, betas=(0.9, 0.999), eps: float = 1e-8, k: int = 1):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "k": k})
        self.t = 0

    @torch.no_grad()
    def step(self):
        self.t += 1
        for group in self.param_groups:
            (b1, b2), k, lr, eps = group["betas"], group["k"], group["lr"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                m, v = moment(state, "m", p), moment(state, "v", p)
                step, denom = scratch(state, p)
                m.mul_(b1).add_(p.grad, alpha=1 - b1)
                v.mul_(b2).add_(torch.pow(p.grad, 2, out=step), alpha=1 - b2)
                if self.t % k == 0:
                    adam_update(p, m, v, 1 - b1 ** self.t, 1 - b2 ** self.t, lr, eps, step, denom)
