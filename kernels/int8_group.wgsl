// One 32-value group rounded to int8 the way kernels/matvec_q4_int8.wgsl and matmul_q4_int8.wgsl
// multiply it: q = round(v / d) with d = max|v| / 127 (d = 0 and q = 0 for an all-zero group), as
// llama.cpp's GPU backends quantize activations to q8_1. The bytes are split like a 4-bit code
// word's nibbles (see matvec_q4_int8.wgsl): `even` word j holds q of values 8j, 8j+2, 8j+4, 8j+6,
// `odd` word j those of 8j+1, 8j+3, 8j+5, 8j+7, so `codes & 0x0F0F0F0F` and `(codes >> 4) & 0x0F0F0F0F`
// meet them in dot4I8Packed. `sum` is over the unquantized values (for the weights' min term).

struct Int8Group { even: vec4<u32>, odd: vec4<u32>, d: f32, sum: f32 }

fn int8_group(v: array<vec4<f32>, 8>) -> Int8Group {
    var largest = vec4<f32>(0.0);
    var sum = vec4<f32>(0.0);
    for (var i = 0u; i < 8u; i++) {
        largest = max(largest, abs(v[i]));
        sum += v[i];
    }
    let amax = max(max(largest.x, largest.y), max(largest.z, largest.w));
    let inv_d = select(0.0, 127.0 / amax, amax > 0.0);
    var out: Int8Group;
    for (var j = 0u; j < 4u; j++) {
        let a = round(v[2u * j] * inv_d);
        let b = round(v[2u * j + 1u] * inv_d);
        out.even[j] = pack4xI8Clamp(vec4<i32>(vec4<f32>(a.x, a.z, b.x, b.z)));
        out.odd[j] = pack4xI8Clamp(vec4<i32>(vec4<f32>(a.y, a.w, b.y, b.w)));
    }
    out.d = amax / 127.0;
    out.sum = sum.x + sum.y + sum.z + sum.w;
    return out;
}
