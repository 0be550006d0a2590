// A build script makes cargo treat this crate's dependencies as build dependencies too, so the
// host-side (proc-macro and build-script) builds are unified as well.
fn main() {}
