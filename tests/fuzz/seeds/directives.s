# Every directive and bundle form of the assembly syntax (docs/ISA.md), for the assembler's fuzzer.
.image_size 0x100
.data addr=0x0 dtype=f32 values=[1.5, -0.25,
                                  3e-3, 16]
.data addr=0x20 hex=00ff10ab
.data addr=0x40 file=w.npy dtype=i16
.data addr=0x60 dtype=i32 values=[-1, 2147483647]

.program first ddr_size=0x200
.input  x ddr=0x0 shape=(4,) dtype=f32 scale=0.5 exp=-3
.state  s ddr=0x40 shape=(2, 4) dtype=i16
.output y ddr=0x100 shape=(1, 2, 2) dtype=i32 exp=2
.loc "load x \u00e9 \"quoted\" # not a comment"
ld buf=0x0, ddr=0x0, rows=1, row_bytes=16, ddr_stride=16, buf_stride=16, sem=1
ctl.wait sem=1, count=1 ; delay=3
nop ; delay=100
st ddr=0x100, buf=0x0, rows=1, row_bytes=16, ddr_stride=16, buf_stride=16, sem=2 | ld buf=0x40, ddr=0x40, rows=2, row_bytes=8, ddr_stride=8, buf_stride=8, sem=0
ctl.wait sem=2, count=1
ctl.halt

.program second.b-2 ddr_size=256
.input t ddr=0x80 shape=(8,) dtype=i8
nop
ctl.halt  # the end
