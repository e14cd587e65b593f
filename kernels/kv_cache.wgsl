// The KV cache's storage, for kernels that bind k_cache and v_cache as array<vec2<u32>> and
// address them in vec4 units (four values of a row): half precision by default, as llama.cpp and
// WebLLM's f16 models keep it (half the memory, and half the bytes a decode step's attention reads,
// which at depth is what costs on CPU drivers), one vec2<u32> of pack2x16float words per four values;
// with KV_F32, float32 bits, two vec2<u32> per four values (LlamaModel(kv_cache_dtype="float32")).
// Values are rounded to nearest; K and V stay far inside f16's range (|x| < 65504) for the models
// run here. Arithmetic stays float32. kv_cache_pairs.wgsl writes the same format two values at a time.

override KV_F32: bool = false;

fn kv_unpack(h: vec2<u32>) -> vec4<f32> {
    return vec4<f32>(unpack2x16float(h.x), unpack2x16float(h.y));
}

fn kv_pack(v: vec4<f32>) -> vec2<u32> {
    return vec2<u32>(pack2x16float(v.xy), pack2x16float(v.zw));
}

// `v` as the cache holds it (rounded to half precision unless KV_F32).
fn kv_round(v: vec4<f32>) -> vec4<f32> {
    if (KV_F32) { return v; }
    return kv_unpack(kv_pack(v));
}

fn k_row4(i: u32) -> vec4<f32> {
    if (KV_F32) { return bitcast<vec4<f32>>(vec4<u32>(k_cache[2u * i], k_cache[2u * i + 1u])); }
    return kv_unpack(k_cache[i]);
}

fn v_row4(i: u32) -> vec4<f32> {
    if (KV_F32) { return bitcast<vec4<f32>>(vec4<u32>(v_cache[2u * i], v_cache[2u * i + 1u])); }
    return kv_unpack(v_cache[i]);
}
