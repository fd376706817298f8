"""Split scikit-learn's bundled digits into scaled train and test arrays (deterministic for a seed)."""

import argparse
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, required=True)
parser.add_argument("--out", type=Path, required=True)
args = parser.parse_args()

digits = load_digits()
x = (digits.data / 16.0).astype(np.float32)
x_train, x_test, y_train, y_test = train_test_split(
    x, digits.target, test_size=0.25, random_state=args.seed, stratify=digits.target
)
for name, array in {"x_train": x_train, "x_test": x_test, "y_train": y_train, "y_test": y_test}.items():
    np.save(args.out / f"{name}.npy", array)  # .npy, not .npz: zip members carry timestamps
print(f"prepare: {len(x_train)} train / {len(x_test)} test samples")
