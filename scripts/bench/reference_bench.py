#!/usr/bin/env python3
"""The Python reference's way of doing the workloads of `examples/bench.rs`, timed on the CPU.

* hashing: numpy, as the reference's NgramHashMapping (REFERENCE.md §1.4): compression by a
  lookup table, right shifts padded with the pad id, multiply-XOR in int64, one `%` per head;
  all layers of the config hashed once per batch (the demo module even re-hashes every layer
  inside each layer's forward; we time the cheaper single pass).
* gather: torch `nn.Embedding` (dense gradient), ids + head offsets as in MultiHeadEmbedding.
* engram: the torch Engram module of scripts/fixtures/gen_engram_fixtures.py (REFERENCE §1.5),
  forward + backward at the headline shape.
* step: a table-only training step (gather, backward, optimizer) with torch's dense AdamW and
  with torch's SparseAdam (nn.Embedding(sparse=True)), at a small and a large table.

Shapes, sizes and repetitions come from the command line so that scripts/bench-compare.sh can
hand both sides the same workload. Prints one JSON object (and writes it to --out).

    /work/pyenv/bin/python scripts/bench/reference_bench.py --out ref.json [--quick]
"""

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "scripts" / "fixtures"))
import gen_engram_fixtures as ref  # noqa: E402  (the fixture generator's torch Engram module)
from render import cpu_model  # noqa: E402  (beside this file)

THREADS = int(os.environ.get("BENCH_THREADS", os.cpu_count() or 1))
torch.set_num_threads(THREADS)  # the fixture module pins 1 thread for determinism

TOKENIZER_VOCAB = 151_669
COMPRESSED_VOCAB = 107_457
HEADLINE = dict(engram_vocab_size=[500, 100, 100], max_ngram_size=4, n_embed_per_ngram=1024,
                n_head_per_ngram=16, layer_ids=[1, 2, 3, 4], pad_id=151_643, seed=0,
                kernel_size=4)
DEMO = dict(engram_vocab_size=[129_280 * 5, 129_280 * 5], max_ngram_size=3,
            n_embed_per_ngram=512, n_head_per_ngram=8, layer_ids=[1, 15], pad_id=2, seed=0,
            kernel_size=4)


def lookup_table():
    """The same Qwen-sized compression as examples/bench.rs (151669 raw -> 107457 ids)."""
    i = np.arange(TOKENIZER_VOCAB, dtype=np.int64)
    return np.where(i < COMPRESSED_VOCAB, i, i % COMPRESSED_VOCAB)


def tokens(n, seed=1):
    return np.random.default_rng(seed).integers(0, TOKENIZER_VOCAB, size=n, dtype=np.int64)


class Hashing:
    def __init__(self, cfg, lookup):
        self.cfg = cfg
        self.lookup = lookup
        n = cfg["max_ngram_size"]
        self.primes = ref.layer_primes(cfg["engram_vocab_size"], n, cfg["n_head_per_ngram"],
                                       cfg["layer_ids"])
        self.mult = {l: ref.layer_multipliers(cfg["seed"], l, COMPRESSED_VOCAB, n)
                     for l in cfg["layer_ids"]}
        self.pad = int(lookup[cfg["pad_id"]])

    def compress(self, x):
        out = x.copy()
        pos = x >= 0
        out[pos] = self.lookup[x[pos]]
        return out

    def hash(self, x):
        c = self.compress(x)
        return {l: ref.ngram_hashes(c, self.mult[l], self.primes[l], self.pad,
                                    self.cfg["max_ngram_size"])
                for l in self.cfg["layer_ids"]}

    def offsets(self, layer):
        ps = [p for per in self.primes[layer] for p in per]
        return np.concatenate([[0], np.cumsum(ps)[:-1]]).astype(np.int64), int(sum(ps))


def timeit(fn, reps, warmup=1):
    for _ in range(warmup):
        fn()
    best, total = math.inf, 0.0
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best = min(best, dt)
        total += dt
    return {"best_s": best, "mean_s": total / reps, "reps": reps}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--hash-batch", type=int, default=16)
    ap.add_argument("--big-rows-per-head", type=int, default=83_000)
    ap.add_argument("--step-dim", type=int, default=16)
    ap.add_argument("--step-rows", type=str, default="10000,1000000,10000000")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--engram-reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    torch.manual_seed(0)
    lookup = lookup_table()
    res = {"threads": THREADS, "numpy": np.__version__, "torch": torch.__version__,
           "machine": {"cpu": cpu_model(), "logical_cpus": os.cpu_count(), "threads": THREADS,
                       "allocator": "glibc (CPython / torch default)"},
           "workloads": {}}
    W = res["workloads"]
    B, T = args.batch, args.seq

    # --- hashing --------------------------------------------------------------------------
    hb = args.hash_batch
    x = tokens(hb * T).reshape(hb, T)
    for name, cfg in (("hash_headline", HEADLINE), ("hash_demo", DEMO)):
        h = Hashing(cfg, lookup)
        r = timeit(lambda: h.hash(x), args.reps)
        r["tokens"] = hb * T
        r["tokens_per_s"] = hb * T / r["best_s"]
        W[name] = r

    # --- gather forward / forward+backward ------------------------------------------------
    big = dict(HEADLINE, engram_vocab_size=[args.big_rows_per_head] * 3, layer_ids=[1])
    head = dict(HEADLINE, layer_ids=[1])
    xb = tokens(B * T, seed=2).reshape(B, T)
    for name, cfg in (("headline", head), ("big", big)):
        h = Hashing(cfg, lookup)
        offsets, rows = h.offsets(1)
        dim = cfg["n_embed_per_ngram"] // cfg["n_head_per_ngram"]
        emb = torch.nn.Embedding(rows, dim)
        off_t = torch.from_numpy(offsets)
        ids = torch.from_numpy(h.hash(xb)[1]) + off_t
        k = ids.shape[-1]
        moved = B * T * k * (2 * dim * 4 + 8)  # row read + output write + int64 id read
        with torch.no_grad():
            r = timeit(lambda: emb(ids), args.reps)
            r.update(table_rows=rows, dim=dim, lookups=B * T * k, bytes_moved=moved,
                     bytes_per_s=moved / r["best_s"])
            W[f"gather_fwd_{name}"] = r

            def hash_gather():
                hashed = h.hash(xb)[1]
                return emb(torch.from_numpy(hashed) + off_t)

            r = timeit(hash_gather, args.reps)
            r.update(table_rows=rows, bytes_moved=moved, bytes_per_s=moved / r["best_s"],
                     tokens_per_s=B * T / r["best_s"])
            W[f"hash_gather_fwd_{name}"] = r
        gout = torch.randn(B, T, k, dim)

        def fwd_bwd():
            emb.weight.grad = None
            emb(ids).backward(gout)

        r = timeit(fwd_bwd, args.reps)
        r.update(table_rows=rows, tokens_per_s=B * T / r["best_s"])
        W[f"gather_fwd_bwd_{name}"] = r
        del emb

    # --- Engram module forward + backward at the headline shape ---------------------------
    hidden = 1024
    h = Hashing(head, lookup)
    primes = h.primes[1]
    cfg = dict(head)
    module = ref.Engram(primes, cfg, hidden, 1)
    for name, p in module.named_parameters():
        if p.dim() > 1 or "embedding" in name:
            torch.nn.init.normal_(p, std=0.02)
    offsets, _ = h.offsets(1)
    ids = torch.from_numpy(h.hash(xb)[1])  # offsets are added by the module
    hs = torch.randn(B, T, 1, hidden)
    gout = torch.randn(B, T, 1, hidden)

    def engram_fwd_bwd():
        module.zero_grad(set_to_none=True)
        out = module(hs, ids)[0]
        out.backward(gout)

    r = timeit(engram_fwd_bwd, args.engram_reps)
    r["tokens_per_s"] = B * T / r["best_s"]
    W["engram_fwd_bwd"] = r
    with torch.no_grad():
        r = timeit(lambda: module(hs, ids), args.engram_reps)
    r["tokens_per_s"] = B * T / r["best_s"]
    W["engram_fwd"] = r
    del module

    # --- table-only training step: dense AdamW vs SparseAdam ------------------------------
    k = 48
    dim = args.step_dim
    rng = np.random.default_rng(3)
    for rows in [int(r) for r in args.step_rows.split(",")]:
        idx = torch.from_numpy(rng.integers(0, rows, size=(B * T, k), dtype=np.int64))
        gout = torch.randn(B * T, k, dim)
        for kind in ("dense", "sparse"):
            emb = torch.nn.Embedding(rows, dim, sparse=(kind == "sparse"))
            opt = (torch.optim.SparseAdam(emb.parameters(), lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
                   if kind == "sparse" else
                   torch.optim.AdamW(emb.parameters(), lr=1e-3, betas=(0.9, 0.95), eps=1e-8,
                                     weight_decay=0.0, foreach=False))

            def step():
                opt.zero_grad(set_to_none=True)
                emb(idx).backward(gout)
                opt.step()

            reps = 2 if args.quick else 3
            r = timeit(step, reps)
            r.update(table_rows=rows, dim=dim, lookups=B * T * k)
            W[f"step_{kind}_{rows}"] = r
            del emb, opt

    Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
