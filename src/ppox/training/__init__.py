"""The training loop: collection, the learner and its optimizer, normalizers, seeds, the
distributed overlay, and the trainer that drives them."""
