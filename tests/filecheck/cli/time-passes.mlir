// RUN: fastmamba opt %s -p 'set-target,cse,dce' --time-passes 2>&1 >/dev/null | filecheck %s

// --time-passes: mlir-opt's timing table on stderr after the run; start-up (the
// command's imports), the parse and each pass a line (wall time, share of the
// total), `other` the rest (printing the IR), then the total.

builtin.module {
  func.func @prefill(%x: tensor<2x16xf32>) -> tensor<2x16xf32> {
    %0 = mamba.silu %x : tensor<2x16xf32>
    func.return %0 : tensor<2x16xf32>
  }
}

// CHECK:      ===-------------------------------------------------------------------------===
// CHECK-NEXT: {{^ +}}... Execution time report ...
// CHECK-NEXT: ===-------------------------------------------------------------------------===
// CHECK-NEXT:   Total Execution Time: [[TOTAL:[0-9]+\.[0-9]{4}]] seconds
// CHECK-EMPTY:
// CHECK-NEXT:   ----Wall Time----  ----Name----
// CHECK-NEXT: {{^ +[0-9]+\.[0-9]{4} \( *[0-9]+\.[0-9]%\)  start-up$}}
// CHECK-NEXT: {{^ +[0-9]+\.[0-9]{4} \( *[0-9]+\.[0-9]%\)  parse$}}
// CHECK-NEXT: {{^ +[0-9]+\.[0-9]{4} \( *[0-9]+\.[0-9]%\)  set-target$}}
// CHECK-NEXT: {{^ +[0-9]+\.[0-9]{4} \( *[0-9]+\.[0-9]%\)  cse$}}
// CHECK-NEXT: {{^ +[0-9]+\.[0-9]{4} \( *[0-9]+\.[0-9]%\)  dce$}}
// CHECK-NEXT: {{^ +[0-9]+\.[0-9]{4} \( *[0-9]+\.[0-9]%\)  other$}}
// CHECK-NEXT: {{^ +}}[[TOTAL]] (100.0%)  Total
// CHECK-NOT:  {{.}}
