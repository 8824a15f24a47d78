// Package gguf reads and writes GGUF, the file format of llama.cpp (and of
// ollama and LM Studio, which embed it), and exports a Hugging Face
// checkpoint folder (Llama, Mistral, Mixtral; safetensors, config.json,
// tokenizer.json) to it, optionally merging a PEFT LoRA adapter on the way.
//
// It is pure Go: exporting needs neither libtorch nor Python. The export
// follows llama.cpp's convert_hf_to_gguf.py: the same metadata keys (gguf-py's
// constants), tensor names, the Q/K row permutation of the "llama"
// architecture, the llama3 rope scaling stored as the rope_freqs tensor,
// Mixtral's experts stacked into one 3-D tensor per projection, and the same
// choice of which tensors stay F32. Tensors are converted row by row while
// they are written, so memory does not grow with the model: a 70B model is
// exported in a few megabytes plus one row block of the largest tensor.
//
// Types: F32, F16, BF16 and Q8_0 (ggml's block layout: 32 values, an fp16
// scale and 32 int8s, quantized as ggml's reference quantize_row_q8_0 does).
//
// The Reader parses a file's header, metadata and tensor table, treating the
// file as hostile input (lengths are checked against the file size before
// anything is allocated), and reads tensors back as float32.
package gguf
