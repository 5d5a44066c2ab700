"""ladder_side_tuning: a side network beside the frozen pretrained LM against full, last-layer and LoRA tuning
(method: methods/ladder_side_tuning.py; LoRA: methods/lora.py).

Post: Ladder Side-Tuning：预训练模型的“过墙梯” https://kexue.fm/archives/9138 (paper arXiv 2206.06522)
The project's pretrained byte-level LM (the shared cache) is tuned on two tasks:
  modules  which of the 10 largest standard-library modules a 64-byte chunk of source comes from
           (classification: a linear head on the mean final hidden state; test chunks from each file's last 20%)
  facts    the copy task of nbce: "?name=" answered from a paragraph of facts (greedy, exact match)
Arms: full fine-tuning, the last block only, LoRA (rank 4 on every projection), LST with a side network of
width 1/4 (Attention + FFN blocks, Su's ladder) initialised at random or by slicing the backbone (the
paper's), trained at `sim.side_lr_factor` times the others' rate (the paper: 3e-3 against full fine-tuning's
3e-4). On the modules task a diagnostic arm, `frozen`, trains the class head alone: how much of the task the
frozen backbone's features carry, which is what a side network builds on. Measured per arm: accuracy,
trainable parameters, milliseconds per training step, and the bytes autograd keeps for backward per step
(saved tensors: the memory backpropagation needs).
"""

from __future__ import annotations

import copy
import random

import numpy as np
import torch

from ..common.costs import CostMeter
from ..common.progress import say
from ..data.facts import copy_batch, paragraph, reading_batch, stack_rows, test_case, training_batch
from ..data.text import documents
from ..methods.ladder_side_tuning import LadderSide, backbone_states
from ..methods.lora import add_lora
from ..models.pretrained import pretrained_lm
from ..models.transformer import AS_TRAINED, ArchConfig, Block, CausalLM

ARMS = ("full", "last_layer", "lora", "lst_random", "lst_sliced")
TASKS = ("modules", "facts")
DIAGNOSTIC_ARMS = {"modules": ("frozen",), "facts": ()}  # frozen: the class head alone on the frozen backbone
ALL_ARMS = ARMS + ("frozen",)


def arms(task: str) -> tuple[str, ...]:
    return ARMS + DIAGNOSTIC_ARMS[task]


def module_chunks(data_cfg, classes: int, length: int):
    """(train files, test files): the `classes` largest standard-library modules, each split 80/20 by bytes."""
    docs = sorted(documents(data_cfg), key=lambda d: -len(d[1]))[:classes]
    split = [(body[: int(0.8 * len(body))], body[int(0.8 * len(body)):]) for _, body in docs]
    return [s[0] for s in split], [s[1] for s in split], [name for name, _ in docs]


def sample_chunks(files, count: int, length: int, rng: random.Random):
    labels = [rng.randrange(len(files)) for _ in range(count)]
    starts = [rng.randrange(len(files[y]) - length) for y in labels]
    x = torch.tensor([list(files[y][s:s + length]) for y, s in zip(labels, starts)])
    return x, torch.tensor(labels)


class Tuned(torch.nn.Module):
    """One arm's model: final hidden states from the (partly) trainable LM or from the ladder; a class head
    (trainable in every arm; with `frozen` it is all that trains)."""

    def __init__(self, base: CausalLM, arm: str, classes: int, sim, seed: int):
        super().__init__()
        if arm not in ALL_ARMS:
            raise ValueError(f"arm={arm}: allowed: {', '.join(ALL_ARMS)}")
        torch.manual_seed(seed)
        self.arm, self.lm = arm, copy.deepcopy(base)
        for p in self.lm.parameters():
            p.requires_grad_(arm == "full")
        if arm == "last_layer":
            for p in list(self.lm.blocks[-1].parameters()) + list(self.lm.norm.parameters()):
                p.requires_grad_(True)
        if arm == "lora":
            add_lora(self.lm, ["qkv", "out", "mlp"], int(sim.lora_rank), float(sim.lora_rank), seed)
        self.side = None
        if arm.startswith("lst"):
            cfg = base.cfg
            width = cfg.width // int(sim.reduction)
            side_cfg = ArchConfig(width=width, layers=cfg.layers, heads=1, mlp_ratio=cfg.mlp_ratio,
                                  rope_base=cfg.rope_base, train_length=cfg.train_length)
            blocks = [Block(side_cfg, i == cfg.layers - 1) for i in range(cfg.layers)]
            for b in blocks:
                b.apply(CausalLM._init)
            self.side = LadderSide(self.lm, blocks, width, "sliced" if arm == "lst_sliced" else "random",
                                   block_args=(AS_TRAINED,))
        self.head = torch.nn.Linear(base.cfg.width, classes) if classes else None

    def hidden(self, tokens):
        if self.side is not None:
            return self.side(backbone_states(self.lm, tokens, AS_TRAINED))
        return self.lm.hidden(tokens)

    def classify(self, tokens):
        return self.head(self.hidden(tokens).mean(1))

    def next_token_logits(self, tokens):
        return self.hidden(tokens) @ self.lm.embed.weight.T

    def trainable(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def arm_lr(arm: str, sim) -> float:
    """The side network trains at sim.side_lr_factor times the others' rate, as in the paper (3e-3 against 3e-4)."""
    return float(sim.lr) * (float(sim.side_lr_factor) if arm.startswith("lst") else 1.0)


def facts_batch(rng, copy_generator, copies: int, sim):
    """One training batch of the facts task: `sim.facts_format` single (3 facts, one question) or reading (1-5
    facts, questions until the row is full), then `copies` in-context copying rows (nbce's recipe)."""
    if sim.facts_format == "reading":
        tokens, mask = reading_batch(rng, int(sim.batch) - copies, 0.0, 5, int(sim.chunk), str(sim.separator))
    else:
        tokens, mask = training_batch(rng, int(sim.batch) - copies, separator=str(sim.separator))
    if copies:
        tokens, mask = stack_rows((tokens, mask), copy_batch(copy_generator, copies, int(sim.chunk)))
    return tokens, mask


def train_and_test(base, arm: str, task: str, seed: int, sim, files, device="cpu") -> dict:
    classes = int(sim.classes) if task == "modules" else 0
    model = Tuned(base, arm, classes, sim, seed).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=arm_lr(arm, sim), weight_decay=0.0)
    rng = random.Random(seed)
    copy_generator = torch.Generator().manual_seed(seed + 1)
    copies = int(round(float(sim.copy_rows) * int(sim.batch)))
    meter = CostMeter(device)  # on CUDA it records the peak allocation too
    length = int(sim.chunk)
    for _ in range(int(sim.steps if task == "modules" else sim.facts_steps)):
        with meter:
            if task == "modules":
                x, y = sample_chunks(files[0], int(sim.batch), length, rng)
                loss = torch.nn.functional.cross_entropy(model.classify(x.to(device)), y.to(device))
            else:
                tokens, mask = facts_batch(rng, copy_generator, copies, sim)
                tokens, mask = tokens.to(device), mask.to(device)
                logits = model.next_token_logits(tokens[:, :-1])
                loss = torch.nn.functional.cross_entropy(logits[mask[:, 1:]], tokens[:, 1:][mask[:, 1:]])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()
    test_rng = random.Random(10_000 + seed)
    with torch.no_grad():
        if task == "modules":
            x, y = sample_chunks(files[1], int(sim.eval_examples), length, test_rng)
            accuracy = float((model.classify(x.to(device)).argmax(1).cpu() == y).float().mean())
        else:
            hits = []
            for _ in range(int(sim.eval_examples)):
                paragraphs, prompt, value = test_case(test_rng, 1, separator=str(sim.separator))
                out = ""
                for _ in range(3):
                    tokens = torch.tensor([list((paragraphs[0] + prompt + out).encode())], device=device)
                    out += chr(int(model.next_token_logits(tokens)[0, -1].argmax()))
                hits.append(out == value)
            accuracy = float(np.mean(hits))
    total = sum(p.numel() for p in model.lm.parameters()) + (0 if model.head is None else model.head.weight.numel())
    return {"accuracy": accuracy, "trainable": model.trainable(), "trainable_fraction": model.trainable() / total}\
        | meter.summary()


def run(cfg, ctx) -> dict:
    sim = cfg.sim
    base = pretrained_lm(cfg.output_root, cfg.model, cfg.data, cfg.pretrain, int(cfg.data.length), ctx.device,
                         ctx.track)
    files = module_chunks(cfg.data, int(sim.classes), int(sim.chunk))
    say(f"modules task: {', '.join(files[2])}; facts task: paragraphs like {paragraph([('abcd', '123')])!r}")
    jobs = [(task, arm, r) for r in range(int(sim.replicates)) for task in TASKS for arm in arms(task)]
    per = {}
    say(f"budgets: modules {int(sim.steps)} steps, facts {int(sim.facts_steps)}; rates: {float(sim.lr):g}, the side "
        f"network's {float(sim.lr) * float(sim.side_lr_factor):g}")
    for task, arm, r in ctx.track(jobs, f"{len(ARMS)} arms x {len(TASKS)} tasks x {int(sim.replicates)} seeds",
                                  total=len(jobs)):
        m = train_and_test(base, arm, task, 1000 * int(cfg.seed) + r, sim, files, ctx.device)
        per[(task, arm, r)] = m
        ctx.log(r, f"{task}_{arm}", **m)
    for (task, arm, r), m in per.items():
        gap = per[(task, "full", r)]["accuracy"] - m["accuracy"]
        ctx.claim_rows.append({"task": task, "arm": arm, "replicate": r, "gap_to_full": gap} | m)
    results = {}
    for task in TASKS:
        for arm in arms(task):
            for key in ("accuracy", "trainable", "trainable_fraction", "ms_per_iteration", "saved_kib_per_iteration"):
                results[f"{task}_{arm}_{key}"] = float(np.mean([per[(task, arm, r)][key]
                                                                for r in range(int(sim.replicates))]))
        results[f"{task}_lst_time_over_full"] = results[f"{task}_lst_random_ms_per_iteration"] / \
            results[f"{task}_full_ms_per_iteration"]
        results[f"{task}_lst_memory_over_full"] = results[f"{task}_lst_random_saved_kib_per_iteration"] / \
            results[f"{task}_full_saved_kib_per_iteration"]
    plot(ctx, results)
    return results


def plot(ctx, results) -> None:
    from ..claims.report import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    markers = dict(zip(ALL_ARMS, "osDv^x"))
    for ax, cost, label in ((axes[0], "saved_kib_per_iteration", "KiB kept for backward per step"),
                            (axes[1], "ms_per_iteration", "ms per training step")):
        for i, task in enumerate(TASKS):
            for arm in arms(task):
                ax.scatter(results[f"{task}_{arm}_{cost}"], results[f"{task}_{arm}_accuracy"], marker=markers[arm],
                           color=f"C{i}", s=40, label=f"{task}: {arm}")
        ax.set(xlabel=label, ylabel="test accuracy", xscale="log")
    axes[0].legend(fontsize=6, ncol=2)
    fig.suptitle("accuracy against the cost of training (mean over seeds)", fontsize=9)
    save_figure(ctx, "ladder_side_tuning", fig)

