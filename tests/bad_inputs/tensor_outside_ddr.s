.program main ddr_size=0x10
.input x ddr=0x8 shape=(4,) dtype=i32
ctl.halt
