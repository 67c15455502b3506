//! Generates the prost types of Qdrant's public gRPC API from `proto/qdrant/` (Qdrant's own
//! `.proto` files, unchanged, Apache-2.0) with protox, a protobuf compiler written in Rust, so
//! that building vecgate needs no `protoc`.
//!
//! Writes two files into `OUT_DIR`:
//! - `qdrant.rs` and `grpc.health.v1.rs`: the messages (no service stubs: vecgate serves and
//!   calls every method through one generic path);
//! - `qdrant_descriptor.bin`: the encoded `FileDescriptorSet`, from which vecgate reads every
//!   service's methods (the method table's completeness test) and every message's fields (the
//!   unknown-field check on requests).
//!
//! `qdrant.proto` imports Qdrant's internal services (raft, internal points and collections,
//! shard snapshots, storage reads), which are not among the public files: they are answered
//! here as empty files, so that none of their methods exists for vecgate, and a call of one is
//! an unknown method.

use std::path::PathBuf;

const PROTO_DIR: &str = "proto/qdrant";

/// The public service files; the messages come along through their imports.
const PROTOS: [&str; 5] = [
    "qdrant.proto",
    "points_service.proto",
    "collections_service.proto",
    "snapshots_service.proto",
    "health_check.proto",
];

/// Imports of `qdrant.proto` that name Qdrant's internal services.
const INTERNAL: [&str; 6] = [
    "collections_internal_service.proto",
    "points_internal_service.proto",
    "qdrant_internal_service.proto",
    "raft_service.proto",
    "shard_snapshots_service.proto",
    "storage_read_service.proto",
];

/// Answers the internal services' files as empty ones.
struct InternalServicesLeftOut;

impl protox::file::FileResolver for InternalServicesLeftOut {
    fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
        if INTERNAL.contains(&name) {
            protox::file::File::from_source(name, "syntax = \"proto3\";\n")
        } else {
            Err(protox::Error::file_not_found(name))
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_DIR}");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut resolver = protox::file::ChainFileResolver::new();
    resolver.add(protox::file::IncludeFileResolver::new(PROTO_DIR.into()));
    resolver.add(protox::file::GoogleFileResolver::new());
    resolver.add(InternalServicesLeftOut);
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler.include_imports(true).include_source_info(false);
    compiler.open_files(PROTOS)?;
    let descriptors = compiler.file_descriptor_set();
    std::fs::write(out_dir.join("qdrant_descriptor.bin"), compiler.encode_file_descriptor_set())?;
    prost_build::Config::new()
        .out_dir(&out_dir)
        // Payload maps in a stable order (answers re-encoded after filtering stay comparable).
        .btree_map(["."])
        .compile_fds(descriptors)?;
    Ok(())
}
