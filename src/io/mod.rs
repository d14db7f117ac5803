//! Generic I/O shared by every layer: JSON files, atomic writes of files and folders,
//! SHA-256 digests, safetensors reading and writing, tensor readback to the host and the
//! non-finite scans built on it. Nothing here knows about Engram, Qwen3 or the study.

#[cfg(feature = "host")]
pub(crate) mod finite;
mod fs;
mod json;
pub(crate) mod panic_guard;
mod readback;
pub(crate) mod safetensors;

#[cfg(feature = "study")]
pub(crate) use fs::sync_dir;
pub use fs::{sha256_bytes, sha256_chunks, sha256_file, write_atomic, write_dir_atomic};
#[cfg(feature = "host")]
pub(crate) use json::read_json_and_value;
pub(crate) use json::{field_names, read_json, unknown_fields, warn_unknown, write_json};
pub(crate) use readback::read_f32;
pub use safetensors::tensor_names;
