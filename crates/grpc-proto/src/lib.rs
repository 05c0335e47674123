//! The generated messages and service stubs of opsd's gRPC surface, and the descriptor
//! set the reflection service serves. Nothing here is written by hand but this file.

#![allow(missing_docs, clippy::all, clippy::pedantic)]
// The generated comments are the protos' own documentation: their links name proto
// elements, their examples are not Rust, and their `<placeholders>` are not HTML.
#![allow(
    rustdoc::broken_intra_doc_links,
    rustdoc::invalid_html_tags,
    rustdoc::invalid_rust_codeblocks,
    rustdoc::bare_urls
)]

/// The encoded `FileDescriptorSet` of every file under `proto/` that opsd serves.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));

pub mod google {
    pub mod api {
        tonic::include_proto!("google.api");
    }
    pub mod longrunning {
        tonic::include_proto!("google.longrunning");
    }
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
}

pub mod opsd {
    pub mod v1 {
        tonic::include_proto!("opsd.v1");
    }
}
