// RUN: fastmamba opt %s -p approximate-nonlinear | filecheck %s
// RUN: fastmamba opt %s -p approximate-nonlinear | fastmamba opt - -p approximate-nonlinear | filecheck %s

// The quantized scan switches from the exact nonlinearities (float softplus and
// exp rounded to the unit's formats) to the NLA's table; a float softplus
// becomes the same first-order approximation in real arithmetic.  SiLU stays
// (the VEC unit computes it).  A second run changes nothing.

builtin.module {
  func.func @prefill(%x: tensor<2x32xi16>, %dt: tensor<2x4xi16>, %params: tensor<4x4xi32>, %b: tensor<2x4xi16>, %c: tensor<2x4xi16>, %d: tensor<2x4xf32>) -> (tensor<2x32xi32>, tensor<4x8x4xi32>, tensor<2x4xf32>, tensor<2x4xf32>) {
    %0, %1 = mamba_quant.qssm_scan %x, %dt, %params, %b, %c {dt_frac = 13 : i64, a_frac = 24 : i64, dbx_shift = 13 : i64, y_shift = 15 : i64, d_shift = 9 : i64, nonlinear = "exact"} : tensor<2x32xi16>, tensor<2x4xi16>, tensor<4x4xi32>, tensor<2x4xi16>, tensor<2x4xi16> -> tensor<2x32xi32>, tensor<4x8x4xi32>
    %2 = mamba.softplus %d : tensor<2x4xf32>
    %3 = mamba.silu %d : tensor<2x4xf32>
    func.return %0, %1, %2, %3 : tensor<2x32xi32>, tensor<4x8x4xi32>, tensor<2x4xf32>, tensor<2x4xf32>
  }
}

// CHECK:      %0, %1 = mamba_quant.qssm_scan %x, %dt, %params, %b, %c {dt_frac = 13 : i64, a_frac = 24 : i64, dbx_shift = 13 : i64, y_shift = 15 : i64, d_shift = 9 : i64, nonlinear = "table"}
// CHECK-NEXT: %2 = mamba_quant.softplus_approx %d : tensor<2x4xf32> -> tensor<2x4xf32>
// CHECK-NEXT: %3 = mamba.silu %d : tensor<2x4xf32>
// CHECK-NOT:  "exact"
// CHECK-NOT:  mamba.softplus
