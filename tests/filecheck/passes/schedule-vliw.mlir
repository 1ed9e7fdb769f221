// RUN: fastmamba opt %s -p set-target,schedule-vliw | filecheck %s
// RUN: fastmamba opt %s -p set-target,schedule-vliw | fastmamba opt - -p schedule-vliw | filecheck %s
// RUN: fastmamba opt %s -p 'set-target,schedule-vliw{lookahead=1}' | filecheck %s --check-prefix=LOOK1
// RUN: fastmamba opt %s -p 'set-target{target="small"},schedule-vliw' | filecheck %s --check-prefix=SMALL

// plan-memory.mlir's output (without its target), scheduled into bundles.
// The tokens' load and the weight tile's load each get a semaphore (1, 2);
// the gather waits for the tokens (wait sem 1) and the VEC pass for the
// gather, the LIN pass for the weights (wait sem 2).  The delays are the
// target's static costs: each bundle issues when its operands are complete.
// The logits' store and the argmax (both only read buffer 256) share a
// bundle; halt ends the program.  A scheduled program is left as it is (the
// second RUN).  With lookahead=1 an op may move up by one place only, so the
// argmax gets a bundle of its own.
// On the RTL-sized target (small: shorter DDR latency, 16 bytes a cycle) the
// same bundles get other delays: the schedule follows the module's target.

builtin.module {
  accel.program attributes {consts = [{name = "embedding", kind = "array", bytes = 512 : i64, function = "prefill_constants", sources = [0 : i64], dtype = "f32", ddr = 0 : i64}, {name = "embeddings[0:8]", kind = "lin_tile", bytes = 160 : i64, function = "prefill_constants", sources = [1 : i64, 2 : i64], rows = [0 : i64, 8 : i64], act_scale = 0.016835324421619179 : f64, ddr = 512 : i64}], image_bytes = 704 : i64, buffer_peak = 384 : i64, sym_name = "prefill", ddr_size = 896 : i64, tensors = [{name = "tokens", role = "input", ddr = 704 : i64, shape = array<i64: 2>, dtype = "i32", scale = 1.000000e+00 : f32, exp = 0 : i64}, {name = "logits", role = "output", ddr = 768 : i64, shape = array<i64: 1, 8>, dtype = "f32", scale = 1.000000e+00 : f32, exp = 0 : i64}, {name = "next_token", role = "output", ddr = 832 : i64, shape = array<i64: 1>, dtype = "i32", scale = 1.000000e+00 : f32, exp = 0 : i64}]} {
    accel.ld {buf = 0 : i64, ddr = 704 : i64, rows = 1 : i64, row_bytes = 8 : i64, ddr_stride = 8 : i64, buf_stride = 8 : i64, sem = 0 : i64, debug = "embedding tokens"}
    accel.ld {buf = 64 : i64, ddr = 512 : i64, rows = 1 : i64, row_bytes = 160 : i64, ddr_stride = 160 : i64, buf_stride = 160 : i64, sem = 0 : i64, debug = "mamba_quant.qlinear embeddings tile 0 weights"}
    accel.ldg {buf = 256 : i64, ddr = 0 : i64, idx = 0 : i64, rows = 2 : i64, row_bytes = 64 : i64, ddr_stride = 64 : i64, buf_stride = 64 : i64, limit = 8 : i64, sem = 0 : i64, debug = "embedding"}
    accel.vec {dst = 0 : i64, a = 320 : i64, b = 0 : i64, rows = 1 : i64, cols = 16 : i64, a_ld = 16 : i64, b_ld = 16 : i64, dst_ld = 16 : i64, a_type = "f32", a_exp = 0 : i64, b_type = "f32", b_exp = 0 : i64, b_mode = "none", op0 = "rmsnorm", op1 = "none", op2 = "none", op3 = "none", group = 16 : i64, eps = 1.000000e-05 : f32, out_type = "i16", out_scale = 15255.7051 : f32, debug = "mamba_quant.vec rmsnorm"}
    accel.lin {dst = 256 : i64, src = 0 : i64, wgt = 64 : i64, scale = 192 : i64, m = 1 : i64, k = 16 : i64, n = 8 : i64, src_ld = 16 : i64, dst_ld = 8 : i64, src_type = "i16", hlog2 = 0 : i64, qmul = 65323 : i64, qshift = 26 : i64, acc = 0 : i64, out = "f32", debug = "mamba_quant.qlinear embeddings tile 0"}
    accel.st {ddr = 768 : i64, buf = 256 : i64, rows = 1 : i64, row_bytes = 32 : i64, ddr_stride = 32 : i64, buf_stride = 32 : i64, sem = 0 : i64, debug = "logits"}
    accel.vec.argmax {dst = 0 : i64, a = 256 : i64, rows = 1 : i64, cols = 8 : i64, debug = "next token"}
    accel.st {ddr = 832 : i64, buf = 0 : i64, rows = 1 : i64, row_bytes = 4 : i64, ddr_stride = 4 : i64, buf_stride = 4 : i64, sem = 0 : i64, debug = "next token"}
  }
  func.func @prefill_constants() -> (tensor<8x16xf32>, tensor<8x16xi8>, tensor<8xf32>) {
    %embeddings = mamba.weight "backbone.embeddings.weight" : tensor<8x16xf32>
    %0, %1 = mamba_quant.quantize_weight %embeddings {granularity = "channel"} : tensor<8x16xf32> -> tensor<8x16xi8>, tensor<8xf32>
    func.return %embeddings, %0, %1 : tensor<8x16xf32>, tensor<8x16xi8>, tensor<8xf32>
  }
}

// CHECK:       builtin.module attributes {accel.target = #accel.target<"vc709", "{{[0-9a-f]+}}">} {
// CHECK-NEXT:  accel.program attributes {consts = [{name = "embedding", kind = "array", bytes = 512 : i64, function = "prefill_constants", sources = [0 : i64], dtype = "f32", ddr = 0 : i64}, {name = "embeddings[0:8]", kind = "lin_tile", bytes = 160 : i64, function = "prefill_constants", sources = [1 : i64, 2 : i64], rows = [0 : i64, 8 : i64], act_scale = 0.016835324421619179 : f64, ddr = 512 : i64}], image_bytes = 704 : i64, buffer_peak = 384 : i64, sym_name = "prefill", ddr_size = 896 : i64, tensors = [{name = "tokens", role = "input", ddr = 704 : i64, shape = array<i64: 2>, dtype = "i32", scale = 1.000000e+00 : f32, exp = 0 : i64}, {name = "logits", role = "output", ddr = 768 : i64, shape = array<i64: 1, 8>, dtype = "f32", scale = 1.000000e+00 : f32, exp = 0 : i64}, {name = "next_token", role = "output", ddr = 832 : i64, shape = array<i64: 1>, dtype = "i32", scale = 1.000000e+00 : f32, exp = 0 : i64}]} {
// CHECK-NEXT:  accel.bundle attributes {delay = 0 : i64} {
// CHECK-NEXT:  accel.ld {buf = 0 : i64, ddr = 704 : i64, rows = 1 : i64, row_bytes = 8 : i64, ddr_stride = 8 : i64, buf_stride = 8 : i64, sem = 1 : i64, debug = "embedding tokens"}
// CHECK-NEXT:  }
// CHECK-NEXT:  accel.bundle attributes {delay = 63 : i64} {
// CHECK-NEXT:  accel.ld {buf = 64 : i64, ddr = 512 : i64, rows = 1 : i64, row_bytes = 160 : i64, ddr_stride = 160 : i64, buf_stride = 160 : i64, sem = 2 : i64, debug = "mamba_quant.qlinear embeddings tile 0 weights"}
// CHECK-NEXT:  }
// CHECK-NEXT:  accel.bundle attributes {delay = 66 : i64} {
// CHECK-NEXT:  accel.ldg {buf = 256 : i64, ddr = 0 : i64, idx = 0 : i64, rows = 2 : i64, row_bytes = 64 : i64, ddr_stride = 64 : i64, buf_stride = 64 : i64, limit = 8 : i64, sem = 1 : i64, debug = "embedding"}
// CHECK-NEXT:  accel.ctl.wait {sem = 1 : i64, count = 1 : i64}
// CHECK-NEXT:  }
// CHECK-NEXT:  accel.bundle attributes {delay = 11 : i64} {
// CHECK-NEXT:  accel.vec {dst = 0 : i64, a = 320 : i64, b = 0 : i64, rows = 1 : i64, cols = 16 : i64, a_ld = 16 : i64, b_ld = 16 : i64, dst_ld = 16 : i64, a_type = "f32", a_exp = 0 : i64, b_type = "f32", b_exp = 0 : i64, b_mode = "none", op0 = "rmsnorm", op1 = "none", op2 = "none", op3 = "none", group = 16 : i64, eps = 1.000000e-05 : f32, out_type = "i16", out_scale = 15255.7051 : f32, debug = "mamba_quant.vec rmsnorm"}
// CHECK-NEXT:  accel.ctl.wait {sem = 1 : i64, count = 1 : i64}
// CHECK-NEXT:  }
// CHECK-NEXT:  accel.bundle attributes {delay = 16 : i64} {
// CHECK-NEXT:  accel.lin {dst = 256 : i64, src = 0 : i64, wgt = 64 : i64, scale = 192 : i64, m = 1 : i64, k = 16 : i64, n = 8 : i64, src_ld = 16 : i64, dst_ld = 8 : i64, src_type = "i16", hlog2 = 0 : i64, qmul = 65323 : i64, qshift = 26 : i64, acc = 0 : i64, out = "f32", debug = "mamba_quant.qlinear embeddings tile 0"}
// CHECK-NEXT:  accel.ctl.wait {sem = 2 : i64, count = 1 : i64}
// CHECK-NEXT:  }
// CHECK-NEXT:  accel.bundle attributes {delay = 10 : i64} {
// CHECK-NEXT:  accel.st {ddr = 768 : i64, buf = 256 : i64, rows = 1 : i64, row_bytes = 32 : i64, ddr_stride = 32 : i64, buf_stride = 32 : i64, sem = 0 : i64, debug = "logits"}
// CHECK-NEXT:  accel.vec.argmax {dst = 0 : i64, a = 256 : i64, rows = 1 : i64, cols = 8 : i64, debug = "next token"}
// CHECK-NEXT:  }
// CHECK-NEXT:  accel.bundle attributes {delay = 0 : i64} {
// CHECK-NEXT:  accel.st {ddr = 832 : i64, buf = 0 : i64, rows = 1 : i64, row_bytes = 4 : i64, ddr_stride = 4 : i64, buf_stride = 4 : i64, sem = 0 : i64, debug = "next token"}
// CHECK-NEXT:  accel.ctl.halt
// CHECK-NEXT:  }
// CHECK-NEXT:  }
// CHECK-NEXT:  func.func @prefill_constants() -> (tensor<8x16xf32>, tensor<8x16xi8>, tensor<8xf32>) {

// LOOK1:       builtin.module attributes {accel.target = #accel.target<"vc709", "{{[0-9a-f]+}}">} {
// LOOK1-NEXT:  accel.program attributes {consts = [{name = "embedding", kind = "array", bytes = 512 : i64, function = "prefill_constants", sources = [0 : i64], dtype = "f32", ddr = 0 : i64}, {name = "embeddings[0:8]", kind = "lin_tile", bytes = 160 : i64, function = "prefill_constants", sources = [1 : i64, 2 : i64], rows = [0 : i64, 8 : i64], act_scale = 0.016835324421619179 : f64, ddr = 512 : i64}], image_bytes = 704 : i64, buffer_peak = 384 : i64, sym_name = "prefill", ddr_size = 896 : i64, tensors = [{name = "tokens", role = "input", ddr = 704 : i64, shape = array<i64: 2>, dtype = "i32", scale = 1.000000e+00 : f32, exp = 0 : i64}, {name = "logits", role = "output", ddr = 768 : i64, shape = array<i64: 1, 8>, dtype = "f32", scale = 1.000000e+00 : f32, exp = 0 : i64}, {name = "next_token", role = "output", ddr = 832 : i64, shape = array<i64: 1>, dtype = "i32", scale = 1.000000e+00 : f32, exp = 0 : i64}]} {
// LOOK1-NEXT:  accel.bundle attributes {delay = 0 : i64} {
// LOOK1-NEXT:  accel.ld {buf = 0 : i64, ddr = 704 : i64, rows = 1 : i64, row_bytes = 8 : i64, ddr_stride = 8 : i64, buf_stride = 8 : i64, sem = 1 : i64, debug = "embedding tokens"}
// LOOK1-NEXT:  }
// LOOK1-NEXT:  accel.bundle attributes {delay = 63 : i64} {
// LOOK1-NEXT:  accel.ld {buf = 64 : i64, ddr = 512 : i64, rows = 1 : i64, row_bytes = 160 : i64, ddr_stride = 160 : i64, buf_stride = 160 : i64, sem = 2 : i64, debug = "mamba_quant.qlinear embeddings tile 0 weights"}
// LOOK1-NEXT:  }
// LOOK1-NEXT:  accel.bundle attributes {delay = 66 : i64} {
// LOOK1-NEXT:  accel.ldg {buf = 256 : i64, ddr = 0 : i64, idx = 0 : i64, rows = 2 : i64, row_bytes = 64 : i64, ddr_stride = 64 : i64, buf_stride = 64 : i64, limit = 8 : i64, sem = 1 : i64, debug = "embedding"}
// LOOK1-NEXT:  accel.ctl.wait {sem = 1 : i64, count = 1 : i64}
// LOOK1-NEXT:  }
// LOOK1-NEXT:  accel.bundle attributes {delay = 11 : i64} {
// LOOK1-NEXT:  accel.vec {dst = 0 : i64, a = 320 : i64, b = 0 : i64, rows = 1 : i64, cols = 16 : i64, a_ld = 16 : i64, b_ld = 16 : i64, dst_ld = 16 : i64, a_type = "f32", a_exp = 0 : i64, b_type = "f32", b_exp = 0 : i64, b_mode = "none", op0 = "rmsnorm", op1 = "none", op2 = "none", op3 = "none", group = 16 : i64, eps = 1.000000e-05 : f32, out_type = "i16", out_scale = 15255.7051 : f32, debug = "mamba_quant.vec rmsnorm"}
// LOOK1-NEXT:  accel.ctl.wait {sem = 1 : i64, count = 1 : i64}
// LOOK1-NEXT:  }
// LOOK1-NEXT:  accel.bundle attributes {delay = 16 : i64} {
// LOOK1-NEXT:  accel.lin {dst = 256 : i64, src = 0 : i64, wgt = 64 : i64, scale = 192 : i64, m = 1 : i64, k = 16 : i64, n = 8 : i64, src_ld = 16 : i64, dst_ld = 8 : i64, src_type = "i16", hlog2 = 0 : i64, qmul = 65323 : i64, qshift = 26 : i64, acc = 0 : i64, out = "f32", debug = "mamba_quant.qlinear embeddings tile 0"}
// LOOK1-NEXT:  accel.ctl.wait {sem = 2 : i64, count = 1 : i64}
// LOOK1-NEXT:  }
// LOOK1-NEXT:  accel.bundle attributes {delay = 0 : i64} {
// LOOK1-NEXT:  accel.st {ddr = 768 : i64, buf = 256 : i64, rows = 1 : i64, row_bytes = 32 : i64, ddr_stride = 32 : i64, buf_stride = 32 : i64, sem = 0 : i64, debug = "logits"}
// LOOK1-NEXT:  }
// LOOK1-NEXT:  accel.bundle attributes {delay = 10 : i64} {
// LOOK1-NEXT:  accel.vec.argmax {dst = 0 : i64, a = 256 : i64, rows = 1 : i64, cols = 8 : i64, debug = "next token"}
// LOOK1-NEXT:  }
// LOOK1-NEXT:  accel.bundle attributes {delay = 0 : i64} {
// LOOK1-NEXT:  accel.st {ddr = 832 : i64, buf = 0 : i64, rows = 1 : i64, row_bytes = 4 : i64, ddr_stride = 4 : i64, buf_stride = 4 : i64, sem = 0 : i64, debug = "next token"}
// LOOK1-NEXT:  accel.ctl.halt
// LOOK1-NEXT:  }
// LOOK1-NEXT:  }
// LOOK1-NEXT:  func.func @prefill_constants() -> (tensor<8x16xf32>, tensor<8x16xi8>, tensor<8xf32>) {
// LOOK1-NEXT:  %embeddings = mamba.weight "backbone.embeddings.weight" : tensor<8x16xf32>

// SMALL:       builtin.module attributes {accel.target = #accel.target<"small", "{{[0-9a-f]+}}">}
// SMALL:       accel.bundle attributes {delay = 0 : i64}
// SMALL-NEXT:  accel.ld {{.*}} debug = "embedding tokens"
// SMALL:       accel.bundle attributes {delay = 15 : i64}
// SMALL-NEXT:  accel.ld {{.*}} debug = "mamba_quant.qlinear embeddings tile 0 weights"
// SMALL:       accel.bundle attributes {delay = 23 : i64}
// SMALL-NEXT:  accel.ldg {{.*}} debug = "embedding"
// SMALL:       accel.bundle attributes {delay = 6 : i64}
// SMALL-NEXT:  accel.vec {{.*}} debug = "mamba_quant.vec rmsnorm"
// SMALL:       accel.bundle attributes {delay = 16 : i64}
// SMALL-NEXT:  accel.lin {{.*}} debug = "mamba_quant.qlinear embeddings tile 0"
// SMALL:       accel.bundle attributes {delay = 3 : i64}
// SMALL-NEXT:  accel.st {{.*}} debug = "logits"
// SMALL-NEXT:  accel.vec.argmax
// SMALL:       accel.bundle attributes {delay = 0 : i64}
// SMALL-NEXT:  accel.st {{.*}} debug = "next token"
// SMALL-NEXT:  accel.ctl.halt
