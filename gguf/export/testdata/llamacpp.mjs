// Runs a GGUF file through llama.cpp (node-llama-cpp's prebuilt CPU
// libraries) for the export tests. Usage:
//   NODE_PATH=<node_modules> node llamacpp.mjs request.json > reply.json
// request: {"model": path, "texts": [string], "specialTexts": [string],
//           "prompts": [[id]], "top": k, "gen": n}
// reply: {"tokens": [[id]] (each text, no special tokens added),
//         "specialTokens": [[id]] (each specialText, special tokens parsed),
//         "addBos": bool, "bos": id|null, "eos": id|null, "eot": id|null,
//         "next": [[[id, logprob]]] (the top k next tokens after each prompt,
//                  from llama.cpp's full softmax over the vocabulary),
//         "greedy": [[id]] (n greedy tokens after each prompt)}
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import path from "node:path";

const require = createRequire(path.join(process.env.NODE_PATH || process.cwd(), "x.js"));
const { getLlama, LlamaLogLevel } = await import(require.resolve("node-llama-cpp"));

const req = JSON.parse(readFileSync(process.argv[2], "utf8"));
const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error, maxThreads: 2 });
const model = await llama.loadModel({ modelPath: req.model, gpuLayers: 0 });
const reply = {
  tokens: (req.texts || []).map((t) => Array.from(model.tokenize(t, false))),
  specialTokens: (req.specialTexts || []).map((t) => Array.from(model.tokenize(t, true))),
  addBos: model.tokens.shouldPrependBosToken,
  bos: model.tokens.bos, eos: model.tokens.eos, eot: model.tokens.eot,
  next: [], greedy: [],
};
// An F32 KV cache and no flash attention: llama.cpp's defaults (F16 cache)
// round keys and values to half precision, which alone moves log-probs by
// ~1e-3; the comparison is of the model, so the cache keeps float32.
const context = await model.createContext({
  contextSize: 512, batchSize: 512, threads: 2, flashAttention: false,
  experimentalKvCacheKeyType: req.kvType || "F32", experimentalKvCacheValueType: req.kvType || "F32",
});
for (const prompt of req.prompts || []) {
  const seq = context.getSequence();
  const input = prompt.slice(0, -1);
  input.push([prompt[prompt.length - 1], { generateNext: { probabilities: true } }]);
  const res = await seq.controlledEvaluate(input);
  const probs = res[res.length - 1].next.probabilities;
  // llama.cpp normalizes the softmax with a float32 running sum, off by
  // ~1e-4 relative over a 262k vocabulary; the map holds every token, so
  // renormalizing in double restores log p = logit − logsumexp(logits).
  let sum = 0;
  for (const p of probs.values()) sum += p;
  const top = [];
  for (const [id, p] of probs) {
    if (top.length >= (req.top || 10)) break;
    top.push([id, Math.log(p) - Math.log(sum)]);
  }
  reply.vocab = probs.size;
  reply.next.push(top);
  await seq.clearHistory();
  const out = [];
  if ((req.gen || 0) > 0) {
    for await (const tok of seq.evaluate(prompt, { temperature: 0, yieldEogToken: true })) {
      out.push(tok);
      if (out.length >= req.gen) break;
    }
  }
  reply.greedy.push(out);
  seq.dispose();
}
await context.dispose();
await model.dispose();
await llama.dispose();
process.stdout.write(JSON.stringify(reply));
