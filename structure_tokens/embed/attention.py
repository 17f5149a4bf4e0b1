"""fair-esm ESM-2 at inference speed and precision, same weights: fused attention
(`scaled_dot_product_attention` instead of materialising the attention matrix; the stock forward
whenever it does not apply) and half-precision casting that keeps rotary position angles in float32.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from esm.multihead_attention import MultiheadAttention
from esm.rotary_embedding import RotaryEmbedding, apply_rotary_pos_emb


def _supported(module: MultiheadAttention) -> bool:
    return module.rot_emb is not None and module.bias_k is None and not module.add_zero_attn


def _fast_forward(self, query, key=None, value=None, key_padding_mask=None, incremental_state=None,
                  need_weights=True, static_kv=False, attn_mask=None, before_softmax=False,
                  need_head_weights=False):
    """Self-attention through SDPA; attention weights are not returned (ESM-2 ignores them
    unless ``need_head_weights``, which takes the stock path)."""
    self_attention = key is query and value is query  # how ESM-2's TransformerLayer calls it
    if (not self_attention or need_head_weights or incremental_state is not None or attn_mask is not None
            or before_softmax or static_kv or (self.training and self.dropout > 0)):
        return self._stock_forward(query, key, value, key_padding_mask, incremental_state, need_weights,
                                   static_kv, attn_mask, before_softmax, need_head_weights)
    tgt_len, bsz, embed_dim = query.shape
    heads, head_dim = self.num_heads, self.head_dim

    def split(x):  # (T, B, E) -> (B * H, T, d), the layout of fair-esm's rotary embedding
        return x.contiguous().view(tgt_len, bsz * heads, head_dim).transpose(0, 1)

    q, k = self.rot_emb(split(self.q_proj(query) * self.scaling), split(self.k_proj(query)))
    v = split(self.v_proj(query))
    q, k, v = (x.view(bsz, heads, tgt_len, head_dim) for x in (q, k, v))
    mask = None
    if key_padding_mask is not None and key_padding_mask.dim() > 0:
        mask = ~key_padding_mask.to(torch.bool)[:, None, None, :]  # True = attend
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1.0)  # q is pre-scaled
    out = out.permute(2, 0, 1, 3).reshape(tgt_len, bsz, embed_dim)
    return self.out_proj(out), None


def enable_fast_attention(model: torch.nn.Module) -> int:
    """Route every supported attention module of ``model`` through SDPA; return how many."""
    patched = 0
    for module in model.modules():
        if isinstance(module, MultiheadAttention) and _supported(module) and not hasattr(module, "_stock_forward"):
            module._stock_forward = module.forward
            module.forward = types.MethodType(_fast_forward, module)
            patched += 1
    return patched


def _rotary_forward(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """fair-esm's rotary embedding with float32 cos/sin tables cast to the activations' dtype."""
    cos, sin = self._update_cos_sin_tables(k, seq_dimension=-2)  # float32: inv_freq is kept float32
    cos, sin = cos.to(q.dtype), sin.to(q.dtype)
    return apply_rotary_pos_emb(q, cos, sin), apply_rotary_pos_emb(k, cos, sin)


def cast_model(model: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """Move and cast ``model`` once for inference, keeping rotary frequencies and angles in float32.

    fair-esm builds its rotary tables in the dtype of ``inv_freq``; after ``model.half()`` the angles
    (position x frequency) are rounded so coarsely that cos/sin are off by up to 0.1 / 0.5
    (float16 / bfloat16) within 256 residues and 0.4 / 2 by 1024. Here only the finished tables
    are rounded (error 2e-4 / 2e-3).
    """
    rotary = [m for m in model.modules() if isinstance(m, RotaryEmbedding)]
    inv_freqs = [m.inv_freq.detach().float().clone() for m in rotary]
    model.to(device=device, dtype=dtype)
    for module, inv_freq in zip(rotary, inv_freqs):
        module.inv_freq = inv_freq.to(device)
        module._seq_len_cached = None  # tables are rebuilt from the float32 frequencies
        module.forward = types.MethodType(_rotary_forward, module)
    return model
