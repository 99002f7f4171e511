"""Write the tiny OpenAI-format state dict and the per-method input images the official runs read.

Run from the catseg-bench checkout: PYTHONPATH=.:tests python tests/data/training_free/official_runs/prepare_inputs.py
"""
import numpy as np
import torch

from training_free_tiny import INPUT_SIZES, input_image, tiny_state_dict

torch.save(tiny_state_dict(), "/tmp/i14/tiny_openai.pt")
np.savez("/tmp/i14/inputs.npz", **{method: input_image(method) for method in INPUT_SIZES})
