// RUN: fastmamba opt %s -p set-target | filecheck %s --check-prefix=DEFAULT
// RUN: fastmamba opt %s -p 'set-target{target="small"}' | filecheck %s --check-prefix=SMALL
// RUN: fastmamba opt %s -p 'set-target{target="small"},set-target' | filecheck %s --check-prefix=DEFAULT
// RUN: not fastmamba opt %s -p 'set-target{target="nope"}' 2>&1 | filecheck %s --check-prefix=UNKNOWN
// RUN: not fastmamba opt %s -p insert-hadamard 2>&1 | filecheck %s --check-prefix=NONE

// The target is recorded once, on the module, with the digest of its
// parameters (the default vc709, or a preset such as small); a later
// set-target replaces it; an unknown name is an error listing the presets.
// Without it, a pass that needs the hardware names the missing attribute
// and the fix.

builtin.module {
  func.func @prefill(%x: tensor<2x16xf32>) -> tensor<2x16xf32> {
    func.return %x : tensor<2x16xf32>
  }
}

// DEFAULT:       builtin.module attributes {accel.target = #accel.target<"vc709", "{{[0-9a-f]+}}">} {
// DEFAULT-NEXT:  func.func @prefill
// SMALL:         builtin.module attributes {accel.target = #accel.target<"small", "{{[0-9a-f]+}}">} {
// UNKNOWN:       fastmamba opt: error: unknown target 'nope': give a preset (vc709, small) or a .toml/.json file
// UNKNOWN-EMPTY:
// NONE:          fastmamba opt: error: insert-hadamard: the module has no target (accel.target): run set-target{target=NAME|FILE} before it (fastmamba compile does, from --target)
// NONE-EMPTY:
