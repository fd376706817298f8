"""Fit an RBF support vector classifier (Azure ML's PythonScriptStep, as a plain script)."""

import argparse
import pickle
from pathlib import Path

import numpy as np
from sklearn.svm import SVC

parser = argparse.ArgumentParser()
parser.add_argument("--features", type=Path, required=True)
parser.add_argument("--C", type=float, required=True)
parser.add_argument("--gamma", type=float, required=True)
parser.add_argument("--out", type=Path, required=True)
args = parser.parse_args()

model = SVC(C=args.C, gamma=args.gamma)
model.fit(np.load(args.features / "x_train.npy"), np.load(args.features / "y_train.npy"))
with open(args.out / "model.pkl", "wb") as f:
    pickle.dump(model, f, protocol=5)
print(f"train: C={args.C} gamma={args.gamma}, {len(model.support_)} support vectors")
