.data addr=0 file="\x"
