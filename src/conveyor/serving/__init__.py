"""The model server: routes (app) -> protocol-independent data plane -> ONNX runtime."""
