"""Speed benchmarks of the engine (not shipped in the wheel; nothing in notebook_llm imports them).

`python -m benchmarks.run` times prefill, decode, the decode step's CPU/GPU split and each kernel
on synthetic GGUFs of the model shapes we target, against llama.cpp's llama-bench on the same files
(benchmarks/peers/). `engine_speed.py` is the older single-model script.
"""
