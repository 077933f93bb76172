"""Raw model throughput: texts/s and real (non-padding) tokens/s of back-to-back forward passes,
without queue, database or HTTP, at several batch sizes on the runner's device and dtype.

    .venv/bin/python bench/raw_model.py
    GPU_RUNNER_DEVICE=cuda .venv/bin/python bench/raw_model.py --texts 65536 --batch-sizes 256,1024,4096
"""

from __future__ import annotations

import argparse
import os

from common import describe_machine, load_model, raw_throughput, sentences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=2048)
    parser.add_argument("--batch-sizes", default="1,8,16,32,64,128")
    parser.add_argument("--seconds", type=float, default=5.0, help="Per batch size.")
    options = parser.parse_args()
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("DATABASE_URL", "postgres://unused/unused")  # Settings need one.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "product.settings")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import django
    import torch

    django.setup()
    model = load_model()
    texts = sentences(options.texts)
    tokens = sum(map(len, model.prepare(texts))) / len(texts)
    print(f"{describe_machine()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"model {model.spec.name} on {model.device} in {model.dtype}; {len(texts)} texts, "
          f"{tokens:.1f} tokens each on average")
    print(f"{'batch':>6} {'texts/s':>10} {'tokens/s':>12}")
    results = []
    for size in (int(s) for s in options.batch_sizes.split(",")):
        result = raw_throughput(model, texts, size, seconds=options.seconds)
        results.append(result)
        print(f"{size:>6} {result['texts_s']:>10,.0f} {result['tokens_s']:>12,.0f}", flush=True)
    best = max(results, key=lambda r: r["texts_s"])
    print(f"best: batch {best['batch']}: {best['texts_s']:,.0f} texts/s, {best['tokens_s']:,.0f} tokens/s")


if __name__ == "__main__":
    main()
