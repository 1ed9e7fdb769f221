.program main ddr_size=0x100
.bogus 1
