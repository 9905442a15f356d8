"""EdgeBERT software: training and compression, the golden model, the weight image, the CLI."""
