"""Inference without FastAPI: model directories, the ONNX Runtime and torch backends, the predictor.

Both backends take the same preprocessed batch and return logits; everything before and after
that call is shared (models.preprocessing), so the two can only differ in arithmetic.
"""
from service.inference.backends import Backend, load_backend
from service.inference.predictor import Prediction, Predictor

__all__ = ["Backend", "load_backend", "Prediction", "Predictor"]
