// Writing four values of a cache row (vec4 unit i) in kv_cache.wgsl's format; for kernels that bind
// the caches read_write as array<vec2<u32>> (include after kv_cache.wgsl).

fn store_k4(i: u32, v: vec4<f32>) {
    if (KV_F32) {
        let bits = bitcast<vec4<u32>>(v);
        k_cache[2u * i] = bits.xy;
        k_cache[2u * i + 1u] = bits.zw;
    } else {
        k_cache[i] = kv_pack(v);
    }
}

fn store_v4(i: u32, v: vec4<f32>) {
    if (KV_F32) {
        let bits = bitcast<vec4<u32>>(v);
        v_cache[2u * i] = bits.xy;
        v_cache[2u * i + 1u] = bits.zw;
    } else {
        v_cache[i] = kv_pack(v);
    }
}
