# One selective-scan (SSM) step of a Mamba2 layer for one token: 2 heads of headdim 4,
# state size 8, one B/C group shared by both heads (docs/NUMERICS.md §5).
#
#   fastmamba asm examples/ssm_step.s -o /tmp/ssm.fmb && fastmamba sim /tmp/ssm.fmb
#
# Per head i (A < 0), for the one token:
#   dt    = softplus(dt_raw[i] + dt_bias[i])              (the NLA's softplus~)
#   dA    = exp(dt * A[i])                                (the NLA's exp~)
#   state = dA * state + dt * x[i, :, None] * B[None, :]  ([p, n] per head)
#   y     = state @ C + D[i] * x[i]                       ([p] per head; the state after the update)
#
# Fixed-point formats (value = stored integer * 2^-fraction bits):
#   x    i16, fx = 10       B  i16, fb = 11       C  i16, fc = 12
#   dt_raw and dt_bias: dt_frac = 12 (also the format of dt = softplus(...))
#   A    i32, a_frac = 12   D  i32, fd = 10
#   state i32, fh = 16      y  i32, fy = 10
# so the ssm op's shift fields are
#   dbx_shift = dt_frac + fx + fb - fh = 12 + 10 + 11 - 16 = 17
#   y_shift   = fc + fh - fy           = 12 + 16 - 10      = 18
#   d_shift   = fd + fx - fy           = 10 + 10 - 10      = 10
# (dt_frac = 12 lies in [log2 nla_segments, nla_bits - 1] = [3, 15] on vc709).
# The shipped dt values exercise both softplus branches: head 0 has
# dt_raw + dt_bias = -2.0 + 0.5 = -1.5 <= 0 (softplus~ = e^s), head 1 has
# 0.5 + 0.75 = 1.25 > 0 (softplus~ = s + e^-s); the initial state is nonzero.
#
# DDR (the constant image holds every input and the initial state; y follows it):
#   0x000 x      i16 [2, 4]      } together the token's conv output row
#   0x010 B      i16 [1, 8]      } [x | B | C], 24 int16 = 48 bytes,
#   0x020 C      i16 [1, 8]      } loaded with one ld
#   0x030 dt     i16 [2]         dt_raw per head
#   0x040 params i32 [2, 4]      per head (A, D, dt_bias, 0)
#   0x060 state  i32 [2, 4, 8]   read, updated, stored back in place
#   0x160 y      i32 [2, 4]      (= [t, h*p] with t = 1)
# BUF: xbc row at 0x000 (xbc_ld = 24, b_off = 8, c_off = 16), dt at 0x040,
#      params at 0x080, state at 0x100, y at 0x200.
#
# Timing (vc709): the ssm op occupies SSM for t * max(ceil(h*p*n / 256),
# ceil(h / 24)) = 1 cycle and completes ssm_latency = 12 cycles later, so
# `delay=12` after it lets the stores read y and the state from the cycle the
# op completes (without it the simulator reports a RAW hazard).

.program main ddr_size=0x180
.input  x      ddr=0x000 shape=(2, 4) dtype=i16 exp=-10
.input  B      ddr=0x010 shape=(1, 8) dtype=i16 exp=-11
.input  C      ddr=0x020 shape=(1, 8) dtype=i16 exp=-12
.input  dt     ddr=0x030 shape=(2,) dtype=i16 exp=-12
.input  params ddr=0x040 shape=(2, 4) dtype=i32
.state  state  ddr=0x060 shape=(2, 4, 8) dtype=i32 exp=-16
.output y      ddr=0x160 shape=(2, 4) dtype=i32 exp=-10

.loc "load x|B|C, dt_raw, params, state (all signal semaphore 1)"
ld buf=0x0, ddr=0x0, rows=1, row_bytes=48, ddr_stride=48, buf_stride=48, sem=1
ld buf=0x40, ddr=0x30, rows=1, row_bytes=4, ddr_stride=4, buf_stride=4, sem=1
ld buf=0x80, ddr=0x40, rows=1, row_bytes=32, ddr_stride=32, buf_stride=32, sem=1
ld buf=0x100, ddr=0x60, rows=1, row_bytes=256, ddr_stride=256, buf_stride=256, sem=1
ctl.wait sem=1, count=4
.loc "one SSM step (t = 1)"
ssm y=0x200, xbc=0x0, dt=0x40, params=0x80, state=0x100, t=1, h=2, p=4, n=8, hpg=2, xbc_ld=24, b_off=8, c_off=16, dt_ld=2, y_ld=8, dt_frac=12, a_frac=12, dbx_shift=17, y_shift=18, d_shift=10 ; delay=12
.loc "store y and the new state (semaphore 2)"
st ddr=0x160, buf=0x200, rows=1, row_bytes=32, ddr_stride=32, buf_stride=32, sem=2
st ddr=0x60, buf=0x100, rows=1, row_bytes=256, ddr_stride=256, buf_stride=256, sem=2
ctl.wait sem=2, count=2
ctl.halt

# The constant image: default inputs and initial state.
# x: head 0 = [0.5, -1.25, 2.0, 0.75], head 1 = [-0.5, 1.5, -2.25, 1.0]
.data addr=0x000 dtype=i16 values=[512, -1280, 2048, 768,
                                   -512, 1536, -2304, 1024]
# B = [1.0, -0.5, 0.25, 0.75, -1.0, 0.5, -0.25, 1.5]
.data addr=0x010 dtype=i16 values=[2048, -1024, 512, 1536, -2048, 1024, -512, 3072]
# C = [0.5, 1.0, -0.75, 0.25, 1.25, -0.5, 0.125, -1.0]
.data addr=0x020 dtype=i16 values=[2048, 4096, -3072, 1024, 5120, -2048, 512, -4096]
# dt_raw = [-2.0, 0.5]
.data addr=0x030 dtype=i16 values=[-8192, 2048]
# params: head 0 (A = -1.0, D = 1.0, dt_bias = 0.5), head 1 (A = -2.5, D = -0.5, dt_bias = 0.75)
.data addr=0x040 dtype=i32 values=[-4096, 1024, 2048, 0,
                                   -10240, -512, 3072, 0]
# initial state [2, 4, 8]: multiples of 0.25 in [-2, 2]
.data addr=0x060 dtype=i32 values=[
    -131072, -81920, -32768, 16384, 65536, 114688, -114688, -65536,
    -16384, 32768, 81920, 131072, -98304, -49152, 0, 49152,
    98304, -131072, -81920, -32768, 16384, 65536, 114688, -114688,
    -65536, -16384, 32768, 81920, 131072, -98304, -49152, 0,
    49152, 98304, -131072, -81920, -32768, 16384, 65536, 114688,
    -114688, -65536, -16384, 32768, 81920, 131072, -98304, -49152,
    0, 49152, 98304, -131072, -81920, -32768, 16384, 65536,
    114688, -114688, -65536, -16384, 32768, 81920, 131072, -98304]
