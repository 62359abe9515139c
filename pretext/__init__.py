"""Label-free pretext objectives (UnNAS): rotation, jigsaw, colorization."""
