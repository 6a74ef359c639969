"""The guard: an ONNX image classifier served by onnxruntime for real-time screening."""
