"""Export of servable SavedModels, TF Serving configuration, gRPC client and local server."""
