// RUN: fastmamba opt %s -p 'cse,dce' --print-ir-before=cse --print-ir-after=dce 2>&1 >/dev/null | filecheck %s
// RUN: fastmamba opt %s -p 'cse,dce' --print-ir-before-all 2>&1 >/dev/null | filecheck %s --check-prefix=ALL
// RUN: not fastmamba opt %s -p 'dce' --print-ir-before=cse 2>&1 | filecheck %s --check-prefix=UNKNOWN

// --print-ir-before / --print-ir-after (and -all) write the IR to stderr headed
// as mlir-opt does; a name not in the pipeline is one line.

builtin.module {
  func.func @prefill(%x: tensor<2x16xf32>) -> tensor<2x16xf32> {
    %0 = mamba.silu %x : tensor<2x16xf32>
    %1 = mamba.silu %x : tensor<2x16xf32>
    func.return %0 : tensor<2x16xf32>
  }
}

// CHECK:      // -----// IR Dump Before cse //----- //
// CHECK-NEXT: builtin.module {
// CHECK-COUNT-2: mamba.silu
// CHECK:      // -----// IR Dump After dce //----- //
// CHECK-NEXT: builtin.module {
// CHECK:        mamba.silu
// CHECK-NOT:    mamba.silu
// CHECK:      }

// ALL:      // -----// IR Dump Before cse //----- //
// ALL:      // -----// IR Dump Before dce //----- //
// ALL-NOT:  IR Dump

// UNKNOWN: fastmamba opt: error: --print-ir-before names a pass not in the pipeline: cse (its passes: dce)
// UNKNOWN-EMPTY:
