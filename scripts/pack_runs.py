"""Pack finished run folders for transport: best checkpoints as float16, logs and metrics, one tar
split into chunks of at most 15 MB (used to bring runs back from a lent GPU machine)."""

import sys
import tarfile
from pathlib import Path

from braintumor.training.checkpoint import load_checkpoint, save_checkpoint

KEEP = ("config.json", "split.json", "metrics.csv", "summary.json", "best_val_probs.json", "curves.png",
        "confusion_matrix.png")


def main(runs: Path, out: Path, chunk: int = 15 * 1024 * 1024) -> None:
    tar_path = out / "runs.tar"
    with tarfile.open(tar_path, "w") as tar:
        for run in sorted(p for p in runs.iterdir() if p.is_dir()):
            for name in KEEP:
                if (run / name).is_file():
                    tar.add(run / name, f"{run.name}/{name}")
            for log in runs.glob(f"runs-{run.name}.log"):
                tar.add(log, f"{run.name}/train.log")
            for ck in ("best",):
                src = run / f"{ck}.safetensors"
                if src.is_file():
                    c = load_checkpoint(src)
                    dst = run / f"{ck}-fp16.safetensors"
                    save_checkpoint(dst, c.build(), c.arch, c.preprocessing, c.classes, c.meta, half=True)
                    tar.add(dst, f"{run.name}/{ck}-fp16.safetensors")
    data = tar_path.read_bytes()
    tar_path.unlink()
    for i in range(0, len(data), chunk):
        (out / f"runs.tar.part{i // chunk:02d}").write_bytes(data[i:i + chunk])
    print(f"packed {len(data) / 1e6:.1f} MB into {(len(data) + chunk - 1) // chunk} parts")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
