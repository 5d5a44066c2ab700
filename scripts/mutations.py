"""Mutation check: break one formula at a time and see whether the test suite notices.

    python scripts/mutations.py            # every mutation below, with the test files that cover it
    python scripts/mutations.py 3 7        # only these (by number)

Each mutation replaces one exact snippet of the source, runs the named test files (pytest -x, 1 thread),
and restores the file; "killed" means a test turned red. Not part of `make test` (minutes of CPU).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent  # run it from a worktree copy: it edits files in place
NUMERIC = ["tests/test_numeric.py"]
CLAIMS = ["tests/test_claims.py"]

# (file, old, new, what it breaks, tests)
MUTATIONS = [
    ("kexue_runs/claims.py",
     "    return student_t_quantile(1 - alpha / 2, df)",
     "    return 0.5 * student_t_quantile(1 - alpha / 2, df)",
     "claim engine: half the t critical value (the decision multiplier)", CLAIMS),
    ("kexue_runs/claims.py",
     "/ (self.n - 1) if self.n > 1 else math.nan", "/ self.n if self.n > 1 else math.nan",
     "claim engine: sample variance with ddof=0", CLAIMS),
    ("kexue_runs/claims.py",
     "    elif hi == FAIL or (lo == PASS and hi == PASS):", "    elif hi == FAIL:",
     "claim engine: a arm winning everywhere counted as a crossover", CLAIMS),
    ("kexue_runs/claims.py",
     "            return FAIL if strict else PASS", "            return PASS",
     "claim engine: an exact tie wins a strict claim", CLAIMS),
    # the verdict rules (#27)
    ("kexue_runs/claims.py",
     '            result.update(verdict=NOT_REACHED, reason="not_reached",',
     '            result.update(verdict=own, reason="not_reached",',
     "verdict rules: a failed precondition leaves the check's own verdict", CLAIMS),
    ("kexue_runs/claims.py",
     '    return check.get("basis", "empirical") == "derivation" and (cell.constant or cell.n == 1)',
     "    return cell.constant or cell.n == 1", "verdict rules: an empirical cell that agrees is exact", CLAIMS),
    ("kexue_runs/claims.py",
     "    return tuple((k, row[k]) for k in unit_keys(check) if k in row and row[k] is not None)",
     "    return replicate_id(row)", "verdict rules: shards of one model count as units", CLAIMS),
    ("kexue_runs/claims.py",
     '    return {**check, "_alpha_pass": alpha, "_alpha_fail": alpha / m, "_cells": m}',
     '    return {**check, "_alpha_pass": alpha, "_alpha_fail": alpha, "_cells": m}',
     "verdict rules: no multiplicity correction over the cells", CLAIMS),
    ("kexue_runs/claims.py",
     "    if seen[0] != verdict or seen[1] != verdict:", "    if FAIL in seen and PASS in seen:",
     "verdict rules: a half that does not decide is not instability", CLAIMS),
    ("kexue_runs/claims.py",
     '    elif has_threshold and origin == "ours" and basis not in ("ours", "precondition"):',
     "    elif False:", "verdict rules: a threshold of ours may decide the post", CLAIMS),
    ("kexue_runs/claims.py",
     "    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)",
     "    return min(1.0, sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)",
     "verdict rules: a one-sided sign test", CLAIMS),
    ("kexue_runs/claims.py",
     '        return {"derivation": "slip", "precondition": "not_reached"}.get(basis, "refuted")',
     '        return "refuted"', "verdict rules: a derivation's FAIL called a refutation", CLAIMS),
    ("kexue_runs/methods/diffusion.py", "        sigma = mean_sigma = sampler.eta * ddpm_sigma",
     "        sigma = mean_sigma = sampler.eta ** 2 * ddpm_sigma", "DDIM: sigma = eta^2 sigma_DDPM",
     ["tests/test_diffusion.py"]),
    ("kexue_runs/experiments/sgd_bound.py", "D ** 2 / (2 * h * etas[-1])", "D ** 2 / (200 * h * etas[-1])",
     "sgd_bound: the bound's first term divided by 100", NUMERIC),
    ("kexue_runs/experiments/self_consuming.py", "var[t] = x.var(axis=0, ddof=1)", "var[t] = x.var(axis=0, ddof=0)",
     "self_consuming: the refit variance with ddof=0", NUMERIC),
    ("kexue_runs/experiments/quanta_scaling.py", "    return zeta(gamma + 1, n + 1) / zeta(gamma + 1)",
     "    return zeta(gamma + 1, n) / zeta(gamma + 1)", "quanta_scaling: the tail sum off by one", NUMERIC),
    ("kexue_runs/experiments/attention_sparsity.py", "    num = (math.sqrt(2 / math.pi) * gamma",
     "    num = (math.sqrt(2) / math.pi * gamma", "attention_sparsity: sqrt(2/pi) -> sqrt(2)/pi", NUMERIC),
    ("kexue_runs/experiments/reparam_argmax.py", "np.arange(1, points + 1) / (points + 1)",
     "np.arange(1, points + 1) / (points + 2)", "reparam_argmax: quantiles k/(K+2)", NUMERIC),
    ("kexue_runs/experiments/lossless_bound.py", "        log2_v = bits / int(length)",
     "        log2_v = bits / int(length) + 1", "lossless_bound: log2 V off by one", NUMERIC),
    ("kexue_runs/experiments/unargmaxable.py", "SEPARATION = 1e-9", "SEPARATION = 1e-2",
     "unargmaxable: Su's criterion with a loose zero", NUMERIC),
    ("kexue_runs/experiments/linear_attention_cost.py", "    return 4 * n * h * h * d * d + 2 * n * n * h * d",
     "    return 4 * n * h * h * d * d + n * n * h * d", "linear_attention_cost: the quadratic term halved", NUMERIC),
    ("kexue_runs/experiments/bert_init.py", "factor = float(truncnorm(-2, 2).std())",
     "factor = float(truncnorm(-3, 3).std())", "bert_init: truncation at 3 std", NUMERIC),
    ("kexue_runs/experiments/ddpm_schedule.py", "    return np.sqrt(1 - 0.02 * t / T)",
     "    return np.sqrt(1 - 0.01 * t / T)", "ddpm_schedule: 0.01 for 0.02", NUMERIC),
    ("kexue_runs/experiments/simsiam_dynamics.py", "        d_theta = -r * phi\n",
     "        d_theta = -r * (phi + 0.01)\n", "simsiam_dynamics: the stop-gradient flow perturbed", NUMERIC),
    ("kexue_runs/experiments/local_global_cosine.py",
     "    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))",
     "    return float(x @ y / (np.linalg.norm(x) + np.linalg.norm(y)))",
     "local_global_cosine: the cosine's denominator", NUMERIC),
    ("kexue_runs/experiments/ddim_cifar.py", "    return min(decay, (1 + step) / (10 + step)) if warmup",
     "    return min(decay, (1 + step) / (100 + step)) if warmup", "ddim_cifar: a slower EMA warm-up",
     ["tests/test_diffusion.py"]),
    ("kexue_runs/experiments/rerope_extrapolation.py",
     "        factor = int(cfg.data.length) / float(e.yarn_reference_length)",
     "        factor = 1.0", "rerope: YaRN's ramp not scaled to L", ["tests/test_rerope.py"]),
    ("kexue_runs/experiments/lora_plus.py", "            nxt = best / 2", "            nxt = best / 4",
     "lora_plus: the eta_A search skips grid points", ["tests/test_lora.py"]),
    ("kexue_runs/methods/fsq.py", "        half_l = (levels - 1) * (1 + self.eps) / 2",
     "        half_l = (levels - 1) * (1 + self.eps) / 2.5", "FSQ: the bound's half width", ["tests/test_fsq.py"]),
    # the classical, generative and context families
    ("kexue_runs/methods/momentum_accumulation.py",
     "m.mul_((beta - 1) * chi_prev + 1).add_(p.grad, alpha=(1 - beta) / k)",
     "m.mul_((beta - 1) * chi_prev + 1).add_(p.grad, alpha=(1 - beta))",
     "momentum_accum: the χ-form SGDM without the 1/k", ["tests/test_classical.py"]),
    ("kexue_runs/methods/momentum_accumulation.py", "    return 1 - (1 - beta) / k",
     "    return 1 - (1 - beta) / (k + 1)",
     "momentum_accum: β̃ = 1 - (1-β)/(k+1)", ["tests/test_classical.py"]),
    ("kexue_runs/methods/tailr.py", "    return (-torch.log(gamma + (1 - gamma) * p) / (1 - gamma)).mean()",
     "    return (-torch.log(gamma + (1 - gamma) * p)).mean()", "tailr: the loss without its 1/(1-γ)",
     ["tests/test_classical.py"]),
    ("kexue_runs/methods/amos.py", "    return (math.sqrt(2) - 1) / T", "    return (math.sqrt(2) - 1) / (2 * T)",
     "amos: the halving rate of the inverse-square decay", ["tests/test_classical.py"]),
    ("kexue_runs/methods/analytic_classifier.py",
     "    return LinearClassifier(weights, log_prior(p) - 0.5 * np.einsum(\"id,id->i\", weights, mu))",
     "    return LinearClassifier(weights, log_prior(p) - np.einsum(\"id,id->i\", weights, mu))",
     "analytic_logreg: the bias without its 1/2", ["tests/test_classical.py"]),
    ("kexue_runs/methods/fourier_density.py", "    return (x + 1) / 2 + (ratio * waves).real.sum(-1)",
     "    return (x + 1) / 2 + 0.5 * (ratio * waves).real.sum(-1)", "fourier_density: the CDF's series halved",
     ["tests/test_classical.py"]),
    ("kexue_runs/methods/retry.py", "            if self.ok or attempt == self.max_tries:",
     "            if self.ok:", "retry: a sleep after the last try", ["tests/test_retry.py"]),
    ("kexue_runs/methods/gan_qp.py", "    return (-delta + delta ** 2 / (2 * lam * distance(real, fake, norm))).mean()",
     "    return (-delta + delta ** 2 / (lam * distance(real, fake, norm))).mean()",
     "gan_qp: the quadratic potential without its 1/2", ["tests/test_generative.py"]),
    ("kexue_runs/methods/gradient_normalization.py", "        return d / (norm + d.abs())",
     "        return d / (norm + 0.5 * d.abs())", "wgan_gn: the normalization's |D| term halved",
     ["tests/test_generative.py"]),
    ("kexue_runs/methods/next_patch.py", "    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise",
     "    return ab * x0 + (1 - ab).sqrt() * noise", "next_patch: the forward process with abar for sqrt(abar)",
     ["tests/test_generative.py"]),
    ("kexue_runs/methods/monoflow.py", ".pow(2).flatten(1).sum(1).mean()", ".pow(2).sum(-1).mean()",
     "monoflow: the matching loss's square summed over the last axis only (wrong on images)",
     ["tests/test_generative.py"]),
    ("kexue_runs/experiments/next_patch.py", ".flatten(1), images[:, :, self.rows:].flatten(1)",
     ".flatten(1), images[:, :, self.rows - 1:-1].flatten(1)",
     "next_patch: the image's next patch shifted up a row", ["tests/test_generative.py"]),
    ("kexue_runs/methods/nbce.py", "    merged = (beta + 1) * pooled - beta * uncond_logp",
     "    merged = (beta + 1) * pooled + beta * uncond_logp", "nbce: the unconditional term's sign",
     ["tests/test_context.py"]),
    ("kexue_runs/experiments/nbce.py", "                               chosen[i], penalty).argmax())",
     "                               None, penalty).argmax())",
     "nbce: the transition penalty never sees the previous context", ["tests/test_context.py"]),
    ("kexue_runs/methods/nbce.py", "        h = h - penalty * torch.nn.functional.one_hot(",
     "        h = h + penalty * torch.nn.functional.one_hot(",
     "nbce: the transition penalty pushes away from the previous context", ["tests/test_context.py"]),
    ("kexue_runs/methods/naive_bayes_attention.py",
     "    return torch.log_softmax((1 + b) * pooled - b * prior_logp, -1)",
     "    return torch.log_softmax(b * pooled - b * prior_logp, -1)", "nb_attention: (1 + b) -> b",
     ["tests/test_context.py"]),
    ("kexue_runs/experiments/ladder_side_tuning.py",
     '(float(sim.side_lr_factor) if arm.startswith("lst") else 1.0)',
     '(float(sim.side_lr_factor) if arm == "lst" else 1.0)',
     "ladder_side_tuning: the side network at the others' rate", ["tests/test_context.py"]),
    ("kexue_runs/experiments/ladder_side_tuning.py", '    tokens, mask = stack_rows((tokens, mask), copy_batch(',
     '    tokens, mask = stack_rows(copy_batch(', "ladder_side_tuning: the facts rows dropped, copy rows only",
     ["tests/test_context.py"]),
    ("kexue_runs/quantiles.py", "        return 1.0 - incomplete_beta(1.0 - x, b, a)",
     "        return incomplete_beta(1.0 - x, b, a)", "quantiles: the incomplete beta's symmetry without 1 -", CLAIMS),
    ("kexue_runs/quantiles.py", "    return 0.5 * incomplete_beta(df / (df + t * t), df / 2, 0.5)",
     "    return 0.5 * incomplete_beta(df / (df + t * t), df / 2, 1.0)", "quantiles: the t tail's beta with b = 1",
     CLAIMS),
    ("kexue_runs/validate.py", "override.value(), merge=True)", "override.value(), merge=False)",
     "preflight: a dict value replaces the config's dict instead of merging as Hydra does", ["tests/test_runs.py"]),
    ("kexue_runs/cli.py", "        atexit._run_exitfuncs()\n", "", "fast exit: exit handlers skipped",
     ["tests/test_runs.py"]),
]


def run(index: int) -> tuple[str, float]:
    path, old, new, _, tests = MUTATIONS[index]
    file = REPO / path
    source = file.read_text()
    if source.count(old) != 1:
        return "snippet not found", 0.0
    file.write_text(source.replace(old, new))
    start = time.time()
    try:
        env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}  # this checkout, not an editable install
        code = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                              cwd=REPO, env=env, capture_output=True).returncode
    finally:
        file.write_text(source)
    return ("killed" if code != 0 else "SURVIVED"), time.time() - start


def main(argv: list[str]) -> int:
    chosen = [int(a) for a in argv] or range(len(MUTATIONS))
    print("| # | mutation | file | tests | result |\n|---|---|---|---|---|")
    survived = 0
    for i in chosen:
        result, seconds = run(i)
        survived += result != "killed"
        path, _, _, what, tests = MUTATIONS[i]
        print(f"| {i} | {what} | {path} | {', '.join(Path(t).name for t in tests)} | {result} ({seconds:.0f} s) |",
              flush=True)
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
