// The KV cache's storage: half precision, as llama.cpp and WebLLM's f16 models keep it (half the
// memory and half the bytes a decode step's attention reads, which at depth is what costs on CPU
// drivers). Four values of a row are one vec2<u32> of pack2x16float words, so an index in vec4
// units addresses the same four values as in a float32 row; writers that hold a pair of adjacent
// values write one u32 (`kv_pack2`). Values are rounded to nearest; K and V stay far inside f16's
// range (|x| < 65504) for the models run here. Arithmetic stays float32.

fn kv_unpack(h: vec2<u32>) -> vec4<f32> {
    return vec4<f32>(unpack2x16float(h.x), unpack2x16float(h.y));
}

fn kv_pack(v: vec4<f32>) -> vec2<u32> {
    return vec2<u32>(pack2x16float(v.xy), pack2x16float(v.zw));
}

fn kv_pack2(a: f32, b: f32) -> u32 {
    return pack2x16float(vec2<f32>(a, b));
}
