.program main ddr_size=0x100
ctl.wait sem=1, count=99999999
