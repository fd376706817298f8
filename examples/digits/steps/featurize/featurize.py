"""Scale pixel intensities with statistics fitted on the training split only."""

import argparse
from pathlib import Path

import numpy as np
from sklearn.preprocessing import StandardScaler

parser = argparse.ArgumentParser()
parser.add_argument("--data", type=Path, required=True)
parser.add_argument("--out", type=Path, required=True)
args = parser.parse_args()

scaler = StandardScaler().fit(np.load(args.data / "x_train.npy"))
for split in ("train", "test"):
    np.save(args.out / f"x_{split}.npy", scaler.transform(np.load(args.data / f"x_{split}.npy")))
    np.save(args.out / f"y_{split}.npy", np.load(args.data / f"y_{split}.npy"))
print(f"featurize: {scaler.n_features_in_} features scaled")
