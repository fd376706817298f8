"""Score the trained MLP on the held-out split (on the CPU) and write metrics as JSON (name -> number)."""

import argparse
import json
from pathlib import Path

import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("--data", type=Path, required=True)
parser.add_argument("--model", type=Path, required=True)
parser.add_argument("--metrics", type=Path, required=True)
args = parser.parse_args()


def weights(name: str) -> np.ndarray:
    return np.load(args.model / f"{name}.npy")


x = np.load(args.data / "x_test.npy")
y = np.load(args.data / "y_test.npy")
hidden = np.maximum(x @ weights("0.weight").T + weights("0.bias"), 0)
predicted = (hidden @ weights("2.weight").T + weights("2.bias")).argmax(axis=1)
metrics = {"accuracy": float((predicted == y).mean())}
args.metrics.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
print(f"evaluate: accuracy={metrics['accuracy']:.4f}")
