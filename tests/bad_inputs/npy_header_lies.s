.data addr=0 file=truncated_header.npy
.program main ddr_size=0x100
ctl.halt
