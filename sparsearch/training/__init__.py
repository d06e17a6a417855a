"""Training SPLADE and inference-free encoders: data, teachers, losses, regularisers, the loop."""
