// Workgroup argmax of one (value, index) candidate per thread, ties to the lowest index; used by
// the sampling kernels. The including kernel defines WORKGROUP (its workgroup size, a power of 2).

const NONE: u32 = 0xffffffffu;

struct Candidate { value: f32, index: u32 }

var<workgroup> best_values: array<f32, WORKGROUP>;
var<workgroup> best_indices: array<u32, WORKGROUP>;

fn better(value: f32, index: u32, best: Candidate) -> bool {
    return best.index == NONE || value > best.value || (value == best.value && index < best.index);
}

// Every thread gets the winner.
fn workgroup_argmax(lid: u32, mine: Candidate) -> Candidate {
    best_values[lid] = mine.value;
    best_indices[lid] = mine.index;
    workgroupBarrier();
    for (var stride = WORKGROUP / 2u; stride > 0u; stride /= 2u) {
        if (lid < stride) {
            let other = best_indices[lid + stride];
            if (other != NONE && better(best_values[lid + stride], other, Candidate(best_values[lid], best_indices[lid]))) {
                best_values[lid] = best_values[lid + stride];
                best_indices[lid] = other;
            }
        }
        workgroupBarrier();
    }
    let winner = Candidate(best_values[0], best_indices[0]);
    workgroupBarrier();  // all have read before the arrays are reused
    return winner;
}
