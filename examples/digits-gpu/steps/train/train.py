"""Train a small MLP on the GPU mlpipe gave this step; save its weights as .npy and the run's GPU stats."""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

parser = argparse.ArgumentParser()
parser.add_argument("--data", type=Path, required=True)
parser.add_argument("--seed", type=int, required=True)
parser.add_argument("--epochs", type=int, required=True)
parser.add_argument("--hidden", type=int, required=True)
parser.add_argument("--lr", type=float, required=True)
parser.add_argument("--out", type=Path, required=True)
parser.add_argument("--stats", type=Path, required=True)
parser.add_argument("--device", default="cuda", help="cuda (the step asks mlpipe for a GPU) or cpu")
args = parser.parse_args()

if args.device == "cuda" and not torch.cuda.is_available():
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "(unset)")
    sys.exit(f"train: no CUDA device usable (CUDA_VISIBLE_DEVICES={visible}, torch {torch.__version__})")

torch.manual_seed(args.seed)
# Warn, never fail, where CUDA has no deterministic kernel for an op.
torch.use_deterministic_algorithms(True, warn_only=True)
device = torch.device(args.device)
x = torch.from_numpy(np.load(args.data / "x_train.npy")).to(device)
y = torch.from_numpy(np.load(args.data / "y_train.npy")).long().to(device)
model = torch.nn.Sequential(
    torch.nn.Linear(x.shape[1], args.hidden), torch.nn.ReLU(), torch.nn.Linear(args.hidden, 10)
).to(device)
optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
batches = torch.split(torch.randperm(len(x), device=device), 64)

if device.type == "cuda":
    torch.cuda.synchronize()
start = time.perf_counter()
for _ in range(args.epochs):
    for batch in batches:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
        loss.backward()
        optimizer.step()
if device.type == "cuda":
    torch.cuda.synchronize()
seconds = time.perf_counter() - start

for name, tensor in model.state_dict().items():
    np.save(args.out / f"{name}.npy", tensor.cpu().numpy())
stats = {"train_seconds": round(seconds, 3), "final_loss": round(loss.item(), 6), "epochs": args.epochs}
if device.type == "cuda":
    stats["peak_gpu_memory_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
args.stats.write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n")
name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
print(f"train: {args.epochs} epochs on {name} in {seconds:.2f} s, loss {loss.item():.4f}")
