.program main ddr_size=0x100
# café in Latin-1
ctl.halt
