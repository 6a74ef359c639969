"""Parts every model service shares: settings, image decoding, batching, metrics, gRPC server."""
