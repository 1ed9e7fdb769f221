.program main ddr_size=0x100
ld buf=0x0, ddr=0x0, rows=1, row_bytes=16, ddr_stride=16, buf_stride=16
