// Writing kv_cache.wgsl's format two adjacent values at a time, for kernels that bind k_cache and
// v_cache as array<u32> and address values by element (e: even, the pair's first):
// half precision, one pack2x16float word per pair; with KV_F32, float32 bits, a word each.

override KV_F32: bool = false;

fn store_k2(e: u32, a: f32, b: f32) {
    if (KV_F32) {
        k_cache[e] = bitcast<u32>(a);
        k_cache[e + 1u] = bitcast<u32>(b);
    } else {
        k_cache[e / 2u] = pack2x16float(vec2<f32>(a, b));
    }
}

fn store_v2(e: u32, a: f32, b: f32) {
    if (KV_F32) {
        v_cache[e] = bitcast<u32>(a);
        v_cache[e + 1u] = bitcast<u32>(b);
    } else {
        v_cache[e / 2u] = pack2x16float(vec2<f32>(a, b));
    }
}
