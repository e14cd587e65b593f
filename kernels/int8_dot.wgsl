// The dot product of one 32-column group of 4-bit codes with one int8-rounded input group, for
// kernels/matvec_q4_int8.wgsl and matmul_q4_int8.wgsl: eight dot4I8Packed (a dp4a instruction
// where the GPU has one) over the codes split into even and odd bytes (int8_group.wgsl's layout),
// returned as a float.
//
// An integer n with |n| < 2^22 added to the bits of 1.5 · 2^23 gives the bits of the float
// 1.5 · 2^23 + n exactly, so the dot products start their sums there and become floats by one
// subtraction instead of a conversion (a quarter-rate instruction on NVIDIA GPUs): 1-6% of the
// matmul_q4_int8 on an H100. Here |q_w · q_x| < 2^16.
const FLOAT_BIAS_BITS: i32 = 0x4B400000;
const FLOAT_BIAS: f32 = 12582912.0;

fn dot32_float(w_e: vec4<u32>, w_o: vec4<u32>, x_e: vec4<u32>, x_o: vec4<u32>) -> f32 {
    let sum = FLOAT_BIAS_BITS + dot4I8Packed(w_e.x, x_e.x) + dot4I8Packed(w_o.x, x_o.x) + dot4I8Packed(w_e.y, x_e.y)
         + dot4I8Packed(w_o.y, x_o.y) + dot4I8Packed(w_e.z, x_e.z) + dot4I8Packed(w_o.z, x_o.z)
         + dot4I8Packed(w_e.w, x_e.w) + dot4I8Packed(w_o.w, x_o.w);
    return bitcast<f32>(sum) - FLOAT_BIAS;
}
