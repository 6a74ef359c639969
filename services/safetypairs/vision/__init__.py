"""torch-side vision models with real pretrained weights (build, export and measure; never
imported by the guard runtime)."""
