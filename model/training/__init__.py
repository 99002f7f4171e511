"""Training CAT-Seg with the official recipe (see `model.training.loop.train`).

    from model.training import TrainSettings, TrainingSet, train
    train("catseg-b", TrainingSet(source, class_names), Path("runs/b"), TrainSettings(), clip_init="openai")
"""

from model.training.loop import TrainingError, TrainingSet, TrainResult, TrainSettings, read_log, train

__all__ = ["TrainResult", "TrainSettings", "TrainingError", "TrainingSet", "read_log", "train"]
