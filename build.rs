//! Compiles `proto/` with protox (no system `protoc`) and embeds the encoded
//! descriptor set, which gRPC reflection and the REST transcoder read at start-up.
use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // tonic-prost-build emits no rerun-if-changed of its own.
    println!("cargo:rerun-if-changed=proto");
    // `embed_migrations!` reads migrations/ at compile time, but a proc
    // macro cannot ask cargo to watch a directory: without this a new
    // migration is not embedded until something else changes.
    println!("cargo:rerun-if-changed=migrations");

    let mut files = Vec::new();
    for entry in std::fs::read_dir("proto/wagate/v1")? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "proto") {
            files.push(path.strip_prefix("proto")?.to_path_buf());
        }
    }
    files.sort();

    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler.include_imports(true);
    compiler.include_source_info(true);
    compiler.open_files(&files)?;

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("wagate_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Undecodable requests are validation errors, not INTERNAL (see the codec).
        .codec_path("crate::api::codec::WagateCodec")
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
