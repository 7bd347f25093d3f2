"""Inference backends (ONNX Runtime, TensorRT, torch) behind one interface."""
