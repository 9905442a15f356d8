"""Test-session settings shared by every test file."""

import torch

# The suite runs on 2 cores with pytest-xdist (one worker per core); more intra-op threads per
# worker only contend, which makes small tensor operations many times slower.
torch.set_num_threads(1)
