"""“闭门造车”之多模态思路浅谈（一）：无损输入 (multimodal musings 1: lossless input)
https://kexue.fm/archives/9984

An ImageNet-64 image carries about 64*64*3 bytes x 3 bits/byte = 36,864 bits. A lossless tokenizer
emitting L tokens from a vocabulary V needs L log2 V >= 36,864: V >= 2^(36864 / L).
Ours beside it: how many bits per byte a general-purpose lossless coder (LZMA) needs on 64 x 64 crops of
the two bundled photos, a yardstick for the post's 3 bits/byte.
"""

from __future__ import annotations

import math

from .numeric import figure, pyplot


def lzma_bits_per_byte(side: int, crops: int, seed: int) -> float:
    """Mean compressed bits per byte of `crops` random side x side RGB crops of the bundled photos."""
    import lzma

    import numpy as np

    from ..data.images import sample_photos

    rng = np.random.default_rng(seed)
    photos = sample_photos()
    bits = []
    for k in range(crops):
        img = photos[k % len(photos)]
        y, x = rng.integers(0, img.shape[0] - side), rng.integers(0, img.shape[1] - side)
        raw = np.ascontiguousarray(img[y:y + side, x:x + side]).tobytes()
        bits.append(8 * len(lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME)) / len(raw))
    return float(np.mean(bits))


def run(cfg, ctx) -> dict:
    sim = cfg.sim
    bits = int(sim.side) ** 2 * int(sim.channels) * float(sim.bits_per_byte)
    results = {"bits_per_image": bits}
    for length in sim.lengths:
        log2_v = bits / int(length)
        results[f"log2_vocab_L{length}"] = log2_v
        results[f"vocab_L{length}"] = 2.0 ** log2_v
        ctx.log(0, f"L{length}", log2_vocab=log2_v, vocab=2.0 ** log2_v)
    results["bits_at_3.44"] = int(sim.side) ** 2 * int(sim.channels) * 3.44
    results["lzma_bits_per_byte"] = lzma_bits_per_byte(int(sim.side), int(sim.crops), int(cfg.seed))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.3))
    lengths = [int(v) for v in sim.lengths]
    ax.plot(lengths, [bits / L for L in lengths], "o-")
    ax.axhline(math.log2(50_000), color="0.5", ls="--", lw=1, label="a 50k text vocabulary")
    ax.set(xscale="log", yscale="log", xlabel="tokens per image L", ylabel="log2 V needed",
           title=f"lossless budget: {bits:,.0f} bits per image")
    ax.legend(fontsize=8)
    figure(ctx, "vocabulary_bound", fig)
    return results
