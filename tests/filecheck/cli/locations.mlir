// RUN: fastmamba opt %s -p cse --mlir-print-debuginfo | filecheck %s
// RUN: fastmamba opt %s -p cse | filecheck %s --check-prefix=PLAIN
// RUN: sed -e 's/mamba.silu %x : tensor<2x16xf32> loc/mamba.bogus %x : tensor<2x16xf32> loc/' %s > %t.bad.mlir
// RUN: not fastmamba opt %t.bad.mlir 2>&1 | filecheck %s --check-prefix=UNKNOWN
// RUN: sed -e 's/mamba.add %0, %1/mamba.add %0 %1/' %s > %t.syntax.mlir
// RUN: not fastmamba opt %t.syntax.mlir 2>&1 | filecheck %s --check-prefix=SYNTAX

// --mlir-print-debuginfo prints each op's location, as mlir-opt does: an op
// that gives none gets the place it was parsed at (FILE:LINE:COL), one with
// its own loc(...) keeps it, an op a pass creates (or a block argument) has
// loc(unknown).  Without the flag no location is printed.  A parse error
// names FILE:LINE:COL: an unknown operation where it starts, a syntax error
// where xDSL's parser stopped.

builtin.module {
  func.func @prefill(%x: tensor<2x16xf32>) -> tensor<2x16xf32> {
    %0 = mamba.silu %x : tensor<2x16xf32> loc("model.py":12:8)
    %1 = mamba.silu %x : tensor<2x16xf32>
    %2 = mamba.add %0, %1 : (tensor<2x16xf32>, tensor<2x16xf32>) -> tensor<2x16xf32>
    func.return %2 : tensor<2x16xf32>
  }
}

// CHECK:      builtin.module {
// CHECK-NEXT:   func.func @prefill(%x: tensor<2x16xf32> loc(unknown)) -> tensor<2x16xf32> {
// CHECK-NEXT:     %0 = mamba.silu %x : tensor<2x16xf32> loc("model.py":12:8)
// CHECK-NEXT:     %1 = mamba.add %0, %0 : (tensor<2x16xf32>, tensor<2x16xf32>) -> tensor<2x16xf32> loc("{{.*}}locations.mlir":19:5)
// CHECK-NEXT:     func.return %1 : tensor<2x16xf32> loc("{{.*}}locations.mlir":20:5)
// CHECK-NEXT:   } loc("{{.*}}locations.mlir":16:3)
// CHECK-NEXT: } loc("{{.*}}locations.mlir":15:1)
// PLAIN:      %0 = mamba.silu %x : tensor<2x16xf32>{{$}}
// UNKNOWN:    fastmamba opt: error: cannot parse {{.*}}.bad.mlir:17:5: Operation mamba.bogus is not registered
// UNKNOWN-EMPTY:
// SYNTAX:     fastmamba opt: error: cannot parse {{.*}}.syntax.mlir:19:23: Expected ','
// SYNTAX-EMPTY:
