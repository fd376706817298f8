"""Score the model on the held-out split and write metrics as JSON (name -> number)."""

import argparse
import json
import pickle
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

parser = argparse.ArgumentParser()
parser.add_argument("--features", type=Path, required=True)
parser.add_argument("--model", type=Path, required=True)
parser.add_argument("--metrics", type=Path, required=True)
args = parser.parse_args()

with open(args.model / "model.pkl", "rb") as f:
    model = pickle.load(f)
y_true = np.load(args.features / "y_test.npy")
y_pred = model.predict(np.load(args.features / "x_test.npy"))
metrics = {"accuracy": accuracy_score(y_true, y_pred), "f1_macro": f1_score(y_true, y_pred, average="macro")}
args.metrics.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
print(f"evaluate: accuracy={metrics['accuracy']:.4f}")
