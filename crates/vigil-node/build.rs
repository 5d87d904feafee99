//! Compiles the C long double arithmetic INCRBYFLOAT needs (see `csrc/ldouble.c`).

fn main() {
    println!("cargo:rerun-if-changed=csrc/ldouble.c");
    cc::Build::new()
        .file("csrc/ldouble.c")
        .warnings(true)
        .compile("vigil_ldouble");
}
