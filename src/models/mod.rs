//! Host models that take Engram memory.

pub mod qwen3;
