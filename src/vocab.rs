//! Tokenizer compression (REFERENCE §1.1): raw token ids that decode to the same normalized
//! text share one compressed id, so "Hello" and " Hello" address the same n-gram rows.

use std::collections::HashMap;
use std::path::Path;

use rayon::prelude::*;
use safetensors::tensor::{Dtype, SafeTensors};
use tokenizers::normalizers::{Lowercase, NFD, NFKC, Replace, Sequence, Strip, StripAccents};
use tokenizers::{NormalizedString, Normalizer, NormalizerWrapper, Tokenizer};

use crate::error::{EngramError, Result};

const LOOKUP_TENSOR: &str = "lookup";
const FORMAT_KEY: &str = "format";
const FORMAT_VALUE: &str = "burn-engram/compressed-vocab/v1";

/// The reference's normalizer: NFKC, NFD, StripAccents, Lowercase, whitespace runs to one
/// space, a lone space protected by a sentinel, Strip, sentinel back to a space.
fn reference_normalizer() -> Result<Sequence> {
    let sentinel = "\u{E000}";
    let replace = |pattern: tokenizers::normalizers::replace::ReplacePattern, content: &str| {
        Replace::new(pattern, content).map_err(|e| EngramError::Tokenizer(e.to_string()))
    };
    use tokenizers::normalizers::replace::ReplacePattern::{Regex, String as Literal};
    Ok(Sequence::new(vec![
        NormalizerWrapper::NFKC(NFKC),
        NormalizerWrapper::NFD(NFD),
        NormalizerWrapper::StripAccents(StripAccents),
        NormalizerWrapper::Lowercase(Lowercase),
        NormalizerWrapper::Replace(replace(Regex(r"[ \t\r\n]+".into()), " ")?),
        NormalizerWrapper::Replace(replace(Regex(r"^ $".into()), sentinel)?),
        NormalizerWrapper::StripNormalizer(Strip::new(true, true)),
        NormalizerWrapper::Replace(replace(Literal(sentinel.into()), " ")?),
    ]))
}

/// Reads a `tokenizer.json`; every failure, a panic inside `tokenizers` on malformed JSON
/// included, is an [`EngramError::Tokenizer`] naming the file.
///
/// ```
/// let err = burn_engram::vocab::load_tokenizer("no/such/tokenizer.json").unwrap_err();
/// assert!(err.to_string().contains("no/such/tokenizer.json"));
/// ```
pub fn load_tokenizer(path: impl AsRef<Path>) -> Result<Tokenizer> {
    let path = path.as_ref();
    let fail = |e: String| EngramError::Tokenizer(format!("{}: {e}", path.display()));
    crate::io::panic_guard::catch_quietly(|| Tokenizer::from_file(path))
        .map_err(|panic| fail(format!("malformed tokenizer ({panic})")))?
        .map_err(|e| fail(e.to_string()))
}

/// A lookup table from raw tokenizer ids to compressed ids, built once from a tokenizer.
///
/// ```
/// # fn main() -> Result<(), burn_engram::EngramError> {
/// use burn_engram::CompressedVocab;
/// let vocab = CompressedVocab::from_lookup(vec![0, 1, 0, 2])?;
/// assert_eq!(vocab.tokenizer_vocab_size(), 4);
/// assert_eq!(vocab.compressed_vocab_size(), 3);
/// assert_eq!(vocab.compress_id(2), Some(0));
/// assert_eq!(vocab.compress_id(-100), Some(-100)); // negative ids pass through
/// assert_eq!(vocab.compress_id(4), None);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompressedVocab {
    lookup: Vec<i64>,
    compressed_size: usize,
}

impl CompressedVocab {
    /// Builds the table from a tokenizer, bit-identical to the reference: for every id
    /// `0..len(tokenizer)` (added tokens included) the key is the decoded text normalized
    /// (or the text itself when that normalizes to nothing, or the raw token string when the
    /// text holds U+FFFD); ids are numbered by first appearance of their key.
    pub fn from_tokenizer(tokenizer: &Tokenizer) -> Result<Self> {
        let normalizer = reference_normalizer()?;
        let size = tokenizer.get_vocab_size(true);
        let keys: Vec<String> = (0..size as u32)
            .into_par_iter()
            .map(|id| {
                let text = tokenizer
                    .decode(&[id], false)
                    .map_err(|e| EngramError::Tokenizer(format!("decoding id {id}: {e}")))?;
                if text.contains('\u{FFFD}') {
                    return tokenizer.id_to_token(id).ok_or_else(|| {
                        EngramError::Tokenizer(format!("id {id} has no token string"))
                    });
                }
                let mut normalized = NormalizedString::from(text.as_str());
                normalizer
                    .normalize(&mut normalized)
                    .map_err(|e| EngramError::Tokenizer(format!("normalizing id {id}: {e}")))?;
                let norm = normalized.get();
                Ok(if norm.is_empty() {
                    text
                } else {
                    norm.to_owned()
                })
            })
            .collect::<Result<_>>()?;
        let mut first_seen: HashMap<&str, i64> = HashMap::with_capacity(size);
        let lookup = keys
            .iter()
            .map(|k| {
                let next = first_seen.len() as i64;
                *first_seen.entry(k.as_str()).or_insert(next)
            })
            .collect();
        let compressed_size = first_seen.len();
        Ok(Self {
            lookup,
            compressed_size,
        })
    }

    /// Loads a tokenizer.json and builds the table from it.
    pub fn from_tokenizer_file(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_tokenizer(&load_tokenizer(path)?)
    }

    /// Wraps an existing table. It must number ids by first appearance (entry i is at most
    /// one more than every entry before it), as every table built from a tokenizer does.
    pub fn from_lookup(lookup: Vec<i64>) -> Result<Self> {
        let mut next = 0i64;
        for (i, &c) in lookup.iter().enumerate() {
            if c < 0 || c > next {
                return Err(EngramError::BadBatch(format!(
                    "compression table entry {i} is {c}; expected an id in 0..={next} (ids are numbered by first appearance)"
                )));
            }
            if c == next {
                next += 1;
            }
        }
        if lookup.is_empty() {
            return Err(EngramError::BadBatch("compression table is empty".into()));
        }
        Ok(Self {
            lookup,
            compressed_size: next as usize,
        })
    }

    /// Number of raw ids (the tokenizer's size, added tokens included).
    pub fn tokenizer_vocab_size(&self) -> usize {
        self.lookup.len()
    }

    /// Number of compressed ids.
    pub fn compressed_vocab_size(&self) -> usize {
        self.compressed_size
    }

    /// The table, raw id -> compressed id.
    pub fn lookup(&self) -> &[i64] {
        &self.lookup
    }

    /// Compresses one id: negative ids pass through unchanged (as in the reference), ids
    /// beyond the tokenizer give `None`.
    pub fn compress_id(&self, id: i64) -> Option<i64> {
        if id < 0 {
            Some(id)
        } else {
            self.lookup.get(id as usize).copied()
        }
    }

    /// Checks that every id of a row-major batch whose rows are `seq_len` long compresses:
    /// the first id at or beyond the tokenizer vocabulary is an error naming its row and
    /// position.
    pub fn check(&self, ids: &[i64], seq_len: usize) -> Result<()> {
        let len = self.lookup.len() as i64;
        match ids.iter().position(|&id| id >= len) {
            None => Ok(()),
            Some(i) => Err(EngramError::TokenOutOfRange {
                id: ids[i],
                row: i / seq_len.max(1),
                pos: i % seq_len.max(1),
                vocab_size: self.lookup.len(),
            }),
        }
    }

    /// Compresses a row-major batch whose rows are `seq_len` long (the row length only
    /// serves the error message).
    pub fn compress(&self, ids: &[i64], seq_len: usize) -> Result<Vec<i64>> {
        self.check(ids, seq_len)?;
        Ok(ids
            .iter()
            .map(|&id| self.compress_id(id).expect("every id was checked above"))
            .collect())
    }

    /// Saves the table as safetensors (one int64 tensor `lookup`), so it is built once.
    /// numpy reads it with `safetensors.numpy.load_file`.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes: Vec<u8> = self.lookup.iter().flat_map(|v| v.to_le_bytes()).collect();
        let tensor = (
            LOOKUP_TENSOR.to_string(),
            Dtype::I64,
            vec![self.lookup.len()],
            bytes,
        );
        let meta = HashMap::from([
            (FORMAT_KEY.to_string(), FORMAT_VALUE.to_string()),
            (
                "compressed_vocab_size".to_string(),
                self.compressed_size.to_string(),
            ),
        ]);
        crate::io::safetensors::write_safetensors(path, &[tensor], Some(meta))
    }

    /// Loads a table written by [`CompressedVocab::save`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| EngramError::io(path, e))?;
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| EngramError::bad_file(path, format!("not a safetensors file: {e}")))?;
        let view = st.tensor(LOOKUP_TENSOR).map_err(|_| {
            EngramError::tensor(path, LOOKUP_TENSOR, "missing (not a compressed-vocab file)")
        })?;
        if view.dtype() != Dtype::I64 || view.shape().len() != 1 {
            return Err(EngramError::tensor(
                path,
                LOOKUP_TENSOR,
                format!(
                    "expected a 1-D I64 tensor, got {:?} {:?}",
                    view.dtype(),
                    view.shape()
                ),
            ));
        }
        let lookup = view
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8-byte chunk")))
            .collect();
        Self::from_lookup(lookup)
            .map_err(|e| EngramError::tensor(path, LOOKUP_TENSOR, e.to_string()))
    }
}
