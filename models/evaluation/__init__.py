"""Scene-level evaluation of detector + classifier on PASCAL VOC folders."""
