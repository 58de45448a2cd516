"""Task specs and loaders: MMEB, ViDoRe and the offline libdocs suite (declarative data + loaders)."""
