.program p ddr_size=16
.loc "\ud800"
nop
