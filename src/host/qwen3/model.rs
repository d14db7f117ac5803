//! The Qwen3 causal language model, with an optional residual injector (Engram) and KV cache.

use burn::module::Module;
use burn::nn::{
    Embedding, EmbeddingConfig, Initializer, Linear, LinearConfig, RmsNorm, RmsNormConfig,
};
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

use super::attention::{LayerKvCache, Qwen3Attention};
use super::config::Qwen3Config;
use super::mlp::Qwen3Mlp;
use super::rope::Rope;
use crate::error::{EngramError, Result};
use crate::inject::{NoInjection, ResidualInjector};
use crate::ops::rms_norm;

/// One decoder layer: `h += attn(norm(h))`, `h += mlp(norm(h))`.
#[derive(Module, Debug)]
pub struct Qwen3DecoderLayer {
    /// Self-attention.
    pub self_attn: Qwen3Attention,
    /// SwiGLU MLP.
    pub mlp: Qwen3Mlp,
    /// Norm before attention.
    pub input_layernorm: RmsNorm,
    /// Norm before the MLP.
    pub post_attention_layernorm: RmsNorm,
}

impl Qwen3DecoderLayer {
    fn forward(
        &self,
        x: Tensor<3>,
        rope: &Rope,
        start: usize,
        mask: &Tensor<4, Bool>,
        cache: Option<&mut LayerKvCache>,
    ) -> Tensor<3> {
        let h = x.clone()
            + self
                .self_attn
                .forward(rms_norm(&self.input_layernorm, x), rope, start, mask, cache);
        h.clone()
            + self
                .mlp
                .forward(rms_norm(&self.post_attention_layernorm, h))
    }
}

/// The decoder stack (HF's `model.` prefix).
#[derive(Module, Debug)]
pub struct Qwen3Model {
    /// Token embeddings `[vocab, hidden]`.
    pub embed_tokens: Embedding,
    /// The decoder layers.
    pub layers: Vec<Qwen3DecoderLayer>,
    /// Final norm.
    pub norm: RmsNorm,
}

/// Keys/values of every layer plus the padding flags of the cached positions, so a prefix
/// can be computed once and extended (or cloned and extended several ways), plus the state
/// the residual injector carries between steps (`S = ()` for the plain model,
/// [`EngramState`](crate::EngramState) with Engram). A forward that fails leaves its cache
/// partly advanced: start a new one (a later step on it is refused or wrong).
#[derive(Debug, Clone, Default)]
pub struct KvCache<S = ()> {
    layers: Vec<LayerKvCache>,
    pad: Option<Tensor<2, Bool>>,
    len: usize,
    memory: S,
}

impl<S: Default> KvCache<S> {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> KvCache<S> {
    /// Positions cached so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The residual injector's decoding state.
    pub fn memory(&self) -> &S {
        &self.memory
    }

    /// The residual injector's decoding state, to prepare the next step with.
    pub fn memory_mut(&mut self) -> &mut S {
        &mut self.memory
    }
}

/// Qwen3 for causal LM: decoder stack plus lm_head (tied to the embeddings or separate).
#[derive(Module, Debug)]
pub struct Qwen3ForCausalLM {
    /// The decoder stack.
    pub model: Qwen3Model,
    /// Separate output projection; `None` when tied to `model.embed_tokens`.
    pub lm_head: Option<Linear>,
    #[module(skip)]
    config: Qwen3Config,
    #[module(skip)]
    rope: Rope,
}

impl Qwen3ForCausalLM {
    /// A model with fresh weights, initialized as transformers' `Qwen3PreTrainedModel` does:
    /// every Linear and Embedding weight `N(0, initializer_range)` (0.02 by default), biases
    /// 0, RMSNorm weights 1. Weights are created lazily, so a model that is loaded next
    /// ([`load_qwen3`](super::load_qwen3)) never draws them.
    ///
    /// ```
    /// # use burn::tensor::Device;
    /// # use burn_engram::host::qwen3::Qwen3ForCausalLM;
    /// let mut cfg = burn_engram::study::base_config(256);
    /// cfg.initializer_range = 0.02;
    /// let model = Qwen3ForCausalLM::new(&cfg, &Device::default());
    /// let w = model.model.embed_tokens.weight.val(); // [vocab, hidden]
    /// let std = w.clone().var(0).mean().sqrt().into_scalar::<f32>();
    /// assert!((std - 0.02).abs() < 0.002, "{std}");
    /// ```
    pub fn new(config: &Qwen3Config, device: &Device) -> Self {
        let init = Initializer::Normal {
            mean: 0.0,
            std: config.initializer_range,
        };
        let norm = || {
            RmsNormConfig::new(config.hidden_size)
                .with_epsilon(config.rms_norm_eps)
                .init(device)
        };
        let layers = (0..config.num_hidden_layers)
            .map(|_| Qwen3DecoderLayer {
                self_attn: Qwen3Attention::new(config, device),
                mlp: Qwen3Mlp::new(
                    config.hidden_size,
                    config.intermediate_size,
                    config.initializer_range,
                    device,
                ),
                input_layernorm: norm(),
                post_attention_layernorm: norm(),
            })
            .collect();
        Self {
            model: Qwen3Model {
                embed_tokens: EmbeddingConfig::new(config.vocab_size, config.hidden_size)
                    .with_initializer(init.clone())
                    .init(device),
                layers,
                norm: norm(),
            },
            lm_head: (!config.tie_word_embeddings).then(|| {
                LinearConfig::new(config.hidden_size, config.vocab_size)
                    .with_bias(false)
                    .with_initializer(init.clone())
                    .init(device)
            }),
            config: config.clone(),
            rope: Rope::new(
                config.head_dim(),
                config.rope_theta,
                config.max_position_embeddings,
                device,
            ),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Qwen3Config {
        &self.config
    }

    /// Logits `[B, T, vocab]` for `ids: [B, T]`; `attention_mask: [B, T]` (1 = token,
    /// 0 = padding) is optional.
    pub fn forward(
        &self,
        ids: Tensor<2, Int>,
        attention_mask: Option<Tensor<2, Int>>,
    ) -> Result<Tensor<3>> {
        self.forward_with(ids, attention_mask, None, &NoInjection, &())
    }

    /// The full forward: optional padding mask, optional KV cache (the new tokens continue
    /// the cached positions), and a residual injector called before every decoder layer
    /// (`h = injector.inject(layer, h)` before the layer's input norm, as TinyEngram does;
    /// with a cache `injector.inject_step(layer, h, batch, cache.memory_mut())`, so `batch`
    /// must be a decoding step's, e.g. [`EngramLayers::prepare_step`](crate::EngramLayers::prepare_step)).
    pub fn forward_with<I: ResidualInjector>(
        &self,
        ids: Tensor<2, Int>,
        attention_mask: Option<Tensor<2, Int>>,
        cache: Option<&mut KvCache<I::State>>,
        injector: &I,
        batch: &I::Batch,
    ) -> Result<Tensor<3>> {
        let h = self.hidden_states(ids, attention_mask, cache, injector, batch)?;
        Ok(self.logits(h))
    }

    /// Final hidden states (after the last norm) `[B, T, hidden]`.
    pub fn hidden_states<I: ResidualInjector>(
        &self,
        ids: Tensor<2, Int>,
        attention_mask: Option<Tensor<2, Int>>,
        mut cache: Option<&mut KvCache<I::State>>,
        injector: &I,
        batch: &I::Batch,
    ) -> Result<Tensor<3>> {
        let [b, t] = ids.dims();
        let device = ids.device();
        if b == 0 || t == 0 {
            return Err(EngramError::BadBatch(format!(
                "input ids have shape [{b}, {t}]"
            )));
        }
        let start = cache.as_ref().map_or(0, |c| c.len);
        if start + t > self.rope.max_positions() {
            return Err(EngramError::BadBatch(format!(
                "{} positions exceed max_position_embeddings {}",
                start + t,
                self.rope.max_positions()
            )));
        }
        if let Some(m) = &attention_mask
            && m.dims() != [b, t]
        {
            return Err(EngramError::ShapeMismatch {
                what: "attention_mask",
                expected: format!("[{b}, {t}] like the input ids"),
                got: m.dims().to_vec(),
            });
        }
        let new_pad = match attention_mask {
            Some(m) => m.equal_elem(0),
            None => {
                Tensor::<2, Bool>::from_data(TensorData::new(vec![false; b * t], [b, t]), &device)
            }
        };
        let pad = match cache.as_ref().and_then(|c| c.pad.clone()) {
            Some(prev) => {
                if prev.dims()[0] != b {
                    return Err(EngramError::BadBatch(format!(
                        "the KV cache holds {} rows, the input {b}",
                        prev.dims()[0]
                    )));
                }
                Tensor::cat(vec![prev, new_pad], 1)
            }
            None => new_pad,
        };
        let s = start + t;
        let causal = Tensor::<2, Bool>::tril_mask([t, s], start as i64, &device);
        let mask = causal
            .reshape([1, 1, t, s])
            .expand([b, 1, t, s])
            .bool_or(pad.clone().reshape([b, 1, 1, s]).expand([b, 1, t, s]));

        if let Some(c) = cache.as_deref_mut()
            && c.layers.len() != self.model.layers.len()
        {
            c.layers = vec![LayerKvCache::default(); self.model.layers.len()];
        }
        let mut x = self.model.embed_tokens.forward(ids);
        for (i, layer) in self.model.layers.iter().enumerate() {
            let layer_cache = match cache.as_deref_mut() {
                Some(c) => {
                    x = injector.inject_step(i, x, batch, &mut c.memory)?;
                    Some(&mut c.layers[i])
                }
                None => {
                    x = injector.inject(i, x, batch)?;
                    None
                }
            };
            x = layer.forward(x, &self.rope, start, &mask, layer_cache);
        }
        if let Some(c) = cache {
            c.pad = Some(pad);
            c.len = s;
        }
        Ok(rms_norm(&self.model.norm, x))
    }

    /// Projects hidden states `[B, T, hidden]` to logits `[B, T, vocab]`.
    pub fn logits(&self, h: Tensor<3>) -> Tensor<3> {
        match &self.lm_head {
            Some(head) => head.forward(h),
            None => {
                let [b, t, d] = h.dims();
                let table = self.model.embed_tokens.weight.val(); // [vocab, hidden]
                let v = table.dims()[0];
                h.reshape([b * t, d])
                    .matmul(table.transpose())
                    .reshape([b, t, v])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn std_of<const D: usize>(t: Tensor<D>) -> (f64, f64) {
        let v = t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        (mean, var.sqrt())
    }

    /// transformers' `_init_weights`: Linear and Embedding weights N(0, initializer_range),
    /// norms 1 (Burn's defaults would be N(0, 1) embeddings and Kaiming-uniform Linears).
    #[test]
    fn fresh_weights_follow_transformers_init() {
        let json = r#"{"model_type": "qwen3", "vocab_size": 512, "hidden_size": 64,
            "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "head_dim": 16, "tie_word_embeddings": false}"#;
        let mut cfg: Qwen3Config = serde_json::from_str(json).unwrap();
        assert_eq!(
            cfg.initializer_range, 0.02,
            "the default when config.json has none"
        );
        let device = Device::default();
        for range in [0.02, 0.05] {
            cfg.initializer_range = range;
            device.seed(1);
            let m = Qwen3ForCausalLM::new(&cfg, &device);
            let layer = &m.model.layers[0];
            let weights: Vec<(&str, Tensor<2>)> = vec![
                ("embed_tokens", m.model.embed_tokens.weight.val()),
                ("lm_head", m.lm_head.as_ref().unwrap().weight.val()),
                ("q_proj", layer.self_attn.q_proj.weight.val()),
                ("o_proj", layer.self_attn.o_proj.weight.val()),
                ("down_proj", layer.mlp.down_proj.weight.val()),
            ];
            for (name, w) in weights {
                let (mean, std) = std_of(w);
                assert!(mean.abs() < 0.1 * range, "{name}: mean {mean}");
                assert!(
                    (std / range - 1.0).abs() < 0.05,
                    "{name}: std {std}, want {range}"
                );
            }
            let (mean, std) = std_of(layer.input_layernorm.gamma.val());
            assert_eq!((mean, std), (1.0, 0.0), "norms start at 1");
            let (mean, _) = std_of(layer.self_attn.q_norm.gamma.val());
            assert_eq!(mean, 1.0);
        }
        let mut with_bias = cfg.clone();
        with_bias.attention_bias = true;
        let m = Qwen3ForCausalLM::new(&with_bias, &device);
        let b = m.model.layers[0]
            .self_attn
            .q_proj
            .bias
            .as_ref()
            .unwrap()
            .val();
        assert_eq!(std_of(b), (0.0, 0.0), "biases start at 0");
    }
}
