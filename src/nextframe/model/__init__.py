"""The splitter, its rotation and losses, the rollouts and the training loop; the methods
that use them (and their registry) are in ``nextframe.methods``."""
