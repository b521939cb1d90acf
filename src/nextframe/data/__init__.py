"""Where clips come from: the synthetic world, TGIF, UCF50 and a local folder, and the
download machinery they share (HTTP, archives, manifests)."""
