// The dot product of 16 int8 codes (four u32 words, column 4j + n in byte n of word j) with 16
// inputs, for the group32_q8* layouts.

fn bytes_dot(codes: vec4<u32>, a: vec4<f32>, b: vec4<f32>, c: vec4<f32>, d: vec4<f32>) -> f32 {
    return (dot(vec4<f32>(unpack4xI8(codes.x)), a) + dot(vec4<f32>(unpack4xI8(codes.y)), b))
         + (dot(vec4<f32>(unpack4xI8(codes.z)), c) + dot(vec4<f32>(unpack4xI8(codes.w)), d));
}
