"""Our own implementations: scVI/scANVI (PyTorch), MNN (mnnCorrect/fastMNN), scmap."""
