"""The edit service: instruction-based image editing on diffusers pipelines."""
