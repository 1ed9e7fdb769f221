.data addr=0 file=huge_header.npy
