//! Compiles proto/ with tonic-prost-build, using the vendored protoc so a fresh machine needs
//! nothing installed. PROTOC is set for this build script only: a global PROTOC would also
//! reach raft-proto's build, which needs a different protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; nothing reads the environment concurrently.
    unsafe { std::env::set_var("PROTOC", protoc) };
    println!("cargo:rerun-if-changed=../../proto");
    // Our codec: undecodable requests are INVALID_ARGUMENT, not prost's INTERNAL.
    tonic_prost_build::configure()
        .codec_path("crate::codec::Codec")
        .compile_protos(
            &["../../proto/node_admin.proto", "../../proto/sentinel.proto"],
            &["../../proto"],
        )?;
    Ok(())
}
