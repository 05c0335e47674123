//! Compiles the protos under `proto/` with protox, a protobuf compiler written in Rust,
//! so that building opsd needs no `protoc` on the machine. The descriptor set it makes
//! is also what the reflection service serves.

use std::path::PathBuf;

const ROOT: &str = "../../proto";
const FILES: &[&str] = &[
    "google/longrunning/operations.proto",
    "google/rpc/error_details.proto",
    "opsd/v1/operation_metadata.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={ROOT}");
    let descriptors = protox::compile(FILES, [ROOT])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("descriptors.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .build_transport(false)
        .compile_fds(descriptors)?;
    Ok(())
}
