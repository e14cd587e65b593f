// The prefill matmuls' epilogue: Y[token, row_offset + row] = value, or += value when ACCUMULATE
// (the residual add), skipping rows past params.rows and tokens past step.n_tokens; Y's rows are
// out_rows wide. The including kernel declares y, params, step and ACCUMULATE.

fn store(row: u32, token: u32, out_rows: u32, value: f32) {
    if (row < params.rows && token < step.n_tokens) {
        let index = token * out_rows + params.row_offset + row;
        if (ACCUMULATE) { y[index] += value; } else { y[index] = value; }
    }
}
