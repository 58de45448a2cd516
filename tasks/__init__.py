"""Task specs and loaders: MMEB, ViDoRe and the offline mini suite (declarative data + loaders)."""
