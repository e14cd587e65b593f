// The sampling kernels' Gumbel noise: g_i = -log(standard_exponential(pcg_hash(stream + pcg_hash(i))))
// for token i, with stream = pcg_hash(seed ^ pcg_hash(position)) (see sample.wgsl), computed
// identically wherever a draw is evaluated (sample_partials.wgsl, sample.wgsl).

// PCG output permutation (O'Neill) used as a 32-bit integer hash (Jarzynski & Olano 2020).
fn pcg_hash(x: u32) -> u32 {
    let state = x * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

// -log(u) for u = (h + 1/2) / 2^32, keeping its relative precision where it is small (u near 1),
// which is where the Gumbel noise -log(-log u) is large and decides the draw. WGSL's log is only
// accurate to 2^-21 absolute on [0.5, 2], so u >= 1/2 is handled through v = 1 - u, held exactly.
fn standard_exponential(h: u32) -> f32 {
    if (h < 0x80000000u) {
        return -log((f32(h) + 0.5) * 2.3283064e-10);            // u in (0, 1/2]
    }
    let v = (f32(~h) + 0.5) * 2.3283064e-10;                     // v = 1 - u in (0, 1/2)
    if (v < 0.005) {
        return v * (1.0 + v * (0.5 + v * (0.33333334 + v * 0.25)));  // -log(1 - v), error < v^5/5
    }
    return -log(1.0 - v);
}

fn noise_stream(seed: u32, position: u32) -> u32 {
    return pcg_hash(seed ^ pcg_hash(position));
}

fn gumbel(stream: u32, i: u32) -> f32 {
    return -log(standard_exponential(pcg_hash(stream + pcg_hash(i))));
}
