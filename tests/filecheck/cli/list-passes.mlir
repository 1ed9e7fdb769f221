// RUN: fastmamba opt --list-passes | filecheck %s

// `opt --list-passes` needs no input file: every registered pass, by name, one
// block each (sorted), its options as `option: type = default`.  This file is
// only the RUN line's home.

// CHECK:      approximate-nonlinear:
// CHECK:      assign-scales: {{.+}}
// CHECK-NEXT:   granularity: "channel" | "tensor" = "channel"
// CHECK-NEXT:   activations: "static" | "dynamic" = "static"
// CHECK-NEXT:   conv_ssm: bool = true
// CHECK-NEXT:   head: "f32" | "int8" = "f32"
// CHECK-EMPTY:
// CHECK-NEXT: calibrate: {{.+}}
// CHECK:        copy_to: str, ... = (none)
// CHECK:      lower-to-accel
// CHECK-NEXT:   tile_kib: int = 0
// CHECK-NEXT:   prefetch: int = 3
// CHECK-NEXT:   fuse_front: bool = true
// CHECK-NEXT:   head_prefetch: bool = true
// CHECK-EMPTY:
// CHECK-NEXT: plan-memory
// CHECK-NEXT:   lookahead: int = 24
// CHECK:      set-target: {{.+}}
// CHECK-NEXT:   target: str = "vc709"
// CHECK-NOT:  {{.}}
