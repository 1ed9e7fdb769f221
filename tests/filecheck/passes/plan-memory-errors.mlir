// RUN: not fastmamba opt %s -p set-target,plan-memory 2>&1 | filecheck %s
// RUN: rm -rf %t.dump
// RUN: not fastmamba opt %s -p set-target,plan-memory --dump-dir %t.dump 2>&1 | filecheck %s --check-prefix=DUMP
// RUN: not fastmamba opt %t.dump/02-plan-memory.failed-input.mlir -p plan-memory 2>&1 | filecheck %s

// lower-to-accel.mlir's output with the gathered embedding rows' buffer grown
// to 128,000,000 bytes: more than the target's on-chip buffer.  The error
// names the buffer, its size and lifetime, and what else is live then.
// With --dump-dir the failing pass's input IR is kept there (00 the input,
// 01 after set-target, 02 what plan-memory ran on) and the error names the
// command that reproduces it, which fails the same way.

builtin.module {
  accel.program attributes {buffers = {"prefill.tokens#1" = 8 : i64, "prefill.u#2" = 128000000 : i64, "prefill.v#3" = 32 : i64, "prefill.embeddings.out#4" = 32 : i64, prefill.weight_ring0 = 160 : i64, "prefill.next_token#5" = 4 : i64}, consts = [{name = "embedding", kind = "array", bytes = 512 : i64, function = "prefill_constants", sources = [0 : i64], dtype = "f32"}, {name = "embeddings[0:8]", kind = "lin_tile", bytes = 160 : i64, function = "prefill_constants", sources = [1 : i64, 2 : i64], rows = [0 : i64, 8 : i64], act_scale = 0.016835324421619179 : f64}], sym_name = "prefill", ddr_size = 0 : i64, tensors = [{name = "tokens", role = "input", ddr = 0 : i64, shape = array<i64: 2>, dtype = "i32", scale = 1.000000e+00 : f32, exp = 0 : i64}, {name = "logits", role = "output", ddr = 0 : i64, shape = array<i64: 1, 8>, dtype = "f32", scale = 1.000000e+00 : f32, exp = 0 : i64}, {name = "next_token", role = "output", ddr = 0 : i64, shape = array<i64: 1>, dtype = "i32", scale = 1.000000e+00 : f32, exp = 0 : i64}]} {
    accel.ld {buf = 0 : i64, ddr = 0 : i64, rows = 1 : i64, row_bytes = 8 : i64, ddr_stride = 8 : i64, buf_stride = 8 : i64, sem = 0 : i64, debug = "embedding tokens", mem = {buf = #accel.mem<buf, "prefill.tokens#1">, ddr = #accel.mem<tensor, "tokens">}}
    accel.ldg {buf = 0 : i64, ddr = 0 : i64, idx = 0 : i64, rows = 2 : i64, row_bytes = 64 : i64, ddr_stride = 64 : i64, buf_stride = 64 : i64, limit = 8 : i64, sem = 0 : i64, debug = "embedding", mem = {buf = #accel.mem<buf, "prefill.u#2">, ddr = #accel.mem<const, "embedding">, idx = #accel.mem<buf, "prefill.tokens#1">}}
    accel.vec {dst = 0 : i64, a = 64 : i64, b = 0 : i64, rows = 1 : i64, cols = 16 : i64, a_ld = 16 : i64, b_ld = 16 : i64, dst_ld = 16 : i64, a_type = "f32", a_exp = 0 : i64, b_type = "f32", b_exp = 0 : i64, b_mode = "none", op0 = "rmsnorm", op1 = "none", op2 = "none", op3 = "none", group = 16 : i64, eps = 1.000000e-05 : f32, out_type = "i16", out_scale = 15255.7051 : f32, debug = "mamba_quant.vec rmsnorm", mem = {a = #accel.mem<buf, "prefill.u#2">, dst = #accel.mem<buf, "prefill.v#3">}}
    accel.ld {buf = 0 : i64, ddr = 0 : i64, rows = 1 : i64, row_bytes = 160 : i64, ddr_stride = 160 : i64, buf_stride = 160 : i64, sem = 0 : i64, debug = "mamba_quant.qlinear embeddings tile 0 weights", mem = {buf = #accel.mem<buf, "prefill.weight_ring0">, ddr = #accel.mem<const, "embeddings[0:8]">}}
    accel.lin {dst = 0 : i64, src = 0 : i64, wgt = 0 : i64, scale = 128 : i64, m = 1 : i64, k = 16 : i64, n = 8 : i64, src_ld = 16 : i64, dst_ld = 8 : i64, src_type = "i16", hlog2 = 0 : i64, qmul = 65323 : i64, qshift = 26 : i64, acc = 0 : i64, out = "f32", debug = "mamba_quant.qlinear embeddings tile 0", mem = {dst = #accel.mem<buf, "prefill.embeddings.out#4">, src = #accel.mem<buf, "prefill.v#3">, wgt = #accel.mem<buf, "prefill.weight_ring0">, scale = #accel.mem<buf, "prefill.weight_ring0">}}
    accel.st {ddr = 0 : i64, buf = 0 : i64, rows = 1 : i64, row_bytes = 32 : i64, ddr_stride = 32 : i64, buf_stride = 32 : i64, sem = 0 : i64, debug = "logits", mem = {buf = #accel.mem<buf, "prefill.embeddings.out#4">, ddr = #accel.mem<tensor, "logits">}}
    accel.vec.argmax {dst = 0 : i64, a = 0 : i64, rows = 1 : i64, cols = 8 : i64, debug = "next token", mem = {dst = #accel.mem<buf, "prefill.next_token#5">, a = #accel.mem<buf, "prefill.embeddings.out#4">}}
    accel.st {ddr = 0 : i64, buf = 0 : i64, rows = 1 : i64, row_bytes = 4 : i64, ddr_stride = 4 : i64, buf_stride = 4 : i64, sem = 0 : i64, debug = "next token", mem = {buf = #accel.mem<buf, "prefill.next_token#5">, ddr = #accel.mem<tensor, "next_token">}}
  }
  func.func @prefill_constants() -> (tensor<8x16xf32>, tensor<8x16xi8>, tensor<8xf32>) {
    %embeddings = mamba.weight "backbone.embeddings.weight" : tensor<8x16xf32>
    %0, %1 = mamba_quant.quantize_weight %embeddings {granularity = "channel"} : tensor<8x16xf32> -> tensor<8x16xi8>, tensor<8xf32>
    func.return %embeddings, %0, %1 : tensor<8x16xf32>, tensor<8x16xi8>, tensor<8xf32>
  }
}

// CHECK:       fastmamba opt: error: tensor prefill.u#2 (128000000 bytes x 1 slot(s), live [1, 2]) does not fit the on-chip buffer of 4405248 bytes: 64 bytes of 1 other tensor(s) are live then
// CHECK-EMPTY:
// DUMP:        fastmamba opt: error: tensor prefill.u#2 (128000000 bytes x 1 slot(s), live [1, 2]) does not fit the on-chip buffer of 4405248 bytes: 64 bytes of 1 other tensor(s) are live then (its input IR: {{.*}}.dump/02-plan-memory.failed-input.mlir; reproduce: fastmamba opt {{.*}}.dump/02-plan-memory.failed-input.mlir -p 'plan-memory')
// DUMP-EMPTY:
