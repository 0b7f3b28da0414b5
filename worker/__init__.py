"""worker: batch frames across cameras, detect faces, classify masks, write results."""
