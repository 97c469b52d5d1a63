"""Training throughput: our step (cached uint8 images, batched tensor augmentation, channels_last)
against a plain torchvision ImageFolder + DataLoader loop with the usual PIL transforms (grayscale to
three channels, resize, random resized crop, flip, rotation, colour jitter).

Same model, input size, batch size and optimiser; images per second over the timed steps (after
warm-up steps). Run from the repo root:

    python benchmarks/train_throughput.py [--data DIR] [--img-size 224] [--batch-size 32] [--steps 20]

Skips (exit 0, one line on stderr) when the Training folder is missing.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/: _common and siblings
from _common import TRAINING, require  # noqa: E402


def plain_loop(data: Path, img_size: int, batch_size: int, steps: int, warmup: int, workers: int) -> float:
    from torchvision import datasets, transforms

    from braintumor.config import IMAGENET_MEAN, IMAGENET_STD
    from braintumor.training.models import build_model

    tf = transforms.Compose([
        transforms.Grayscale(num_output_channels=3),
        transforms.Resize(round(img_size * 256 / 224)),
        transforms.RandomResizedCrop(img_size),
        transforms.RandomHorizontalFlip(p=0.5),
        transforms.RandomRotation(15),
        transforms.ColorJitter(brightness=0.15, contrast=0.15),
        transforms.ToTensor(),
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])
    ds = datasets.ImageFolder(str(data), transform=tf)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers,
                                         drop_last=True, persistent_workers=workers > 0)
    torch.manual_seed(0)
    model = build_model("resnet18", 4).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    it = iter(loader)
    t0 = None
    for step in range(warmup + steps):
        if step == warmup:
            t0 = time.perf_counter()
        x, y = next(it)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * batch_size / (time.perf_counter() - t0)


def our_loop(data: Path, img_size: int, batch_size: int, steps: int, warmup: int,
             amp: bool = True) -> tuple[float, float]:
    """Returns (images/s of the training steps, seconds spent building the cache once)."""
    from braintumor.data.folders import list_samples
    from braintumor.training.image_cache import build_cache
    from braintumor.training.engine import train_one_epoch
    from braintumor.training.models import build_model
    from braintumor.training.transforms import Augment, Preprocessing

    prep = Preprocessing(img_size, 256 / 224)
    samples = list_samples(data)
    t = time.perf_counter()
    cache = build_cache(samples, prep.resize_size, None, workers=os.cpu_count() or 1, desc="cache")
    cache_s = time.perf_counter() - t
    torch.manual_seed(0)
    model = build_model("resnet18", 4).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    aug = Augment(img_size, (0.08, 1.0))
    gen = torch.Generator().manual_seed(0)
    order = torch.randperm(len(cache.labels), generator=gen).numpy()
    dev = torch.device("cpu")
    kw = dict(label_smoothing=0.0, amp=amp, channels_last=True, show_progress=False)
    train_one_epoch(model, opt, None, cache.images, cache.labels, order[: warmup * batch_size], batch_size,
                    aug, prep, dev, gen, **kw)
    t0 = time.perf_counter()
    train_one_epoch(model, opt, None, cache.images, cache.labels,
                    order[warmup * batch_size:(warmup + steps) * batch_size], batch_size, aug, prep, dev,
                    gen, **kw)
    return steps * batch_size / (time.perf_counter() - t0), cache_s


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=TRAINING)
    ap.add_argument("--img-size", type=int, default=224)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--workers", type=int, default=None,
                    help="DataLoader workers for the plain loop (default: try 0 and 2, keep the faster)")
    args = ap.parse_args()
    require(args.data, TRAINING, option="--data")
    os.environ.setdefault("BRAINTUMOR_NO_PROGRESS", "1")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"ResNet18, {args.img_size} px, batch {args.batch_size}, {args.steps} timed steps after {args.warmup}")
    from braintumor.training.engine import cpu_has_bf16

    bf16 = cpu_has_bf16()
    ours, cache_s = our_loop(args.data, args.img_size, args.batch_size, args.steps, args.warmup, amp=bf16)
    print(f"ours:  {ours:7.1f} img/s  ({'bfloat16 autocast, as braintumor train does on this CPU' if bf16 else 'float32'};"
          f" one-off cache build: {cache_s:.1f} s)")
    if bf16:
        ours32, _ = our_loop(args.data, args.img_size, args.batch_size, args.steps, args.warmup, amp=False)
        print(f"ours:  {ours32:7.1f} img/s  (float32, --no-amp)")
    plain = {}
    for w in ([args.workers] if args.workers is not None else [0, 2]):
        plain[w] = plain_loop(args.data, args.img_size, args.batch_size, args.steps, args.warmup, w)
        print(f"plain: {plain[w]:7.1f} img/s  (ImageFolder + DataLoader, num_workers={w})")
    best_w = max(plain, key=plain.get)
    print(f"ratio: {ours / plain[best_w]:.2f}x the best plain loop (num_workers={best_w})")
    if bf16:
        print(f"ratio in float32 (--no-amp): {ours32 / plain[best_w]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
