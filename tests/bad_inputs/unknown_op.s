.program main ddr_size=0x100
frobnicate x=1
